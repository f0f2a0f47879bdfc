//! The operator's listing form: the common fields of the node's own listing as editable text, turned
//! back into a [`Listing`] and validated with the model's own rules, each problem shown next to the field
//! it names.

use deskmesh_crdt_model::listing::{Booking, Offer, Product};
use deskmesh_crdt_model::Listing;

/// An editable field of the form, in form order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldId {
    Name,
    Description,
    OpeningHours,
    MemberHours,
    Website,
    Email,
    Phone,
    DayPass,
    Currency,
    WifiDown,
}

impl FieldId {
    pub(crate) const ALL: [FieldId; 10] = [
        Self::Name,
        Self::Description,
        Self::OpeningHours,
        Self::MemberHours,
        Self::Website,
        Self::Email,
        Self::Phone,
        Self::DayPass,
        Self::Currency,
        Self::WifiDown,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Description => "description",
            Self::OpeningHours => "opening hours",
            Self::MemberHours => "member access",
            Self::Website => "website",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::DayPass => "day pass price",
            Self::Currency => "currency",
            Self::WifiDown => "wifi down Mbit/s",
        }
    }

    /// The listing path whose validation errors belong to this field (`offers[i]` is the day pass).
    fn owns(self, path: &str, day_pass: Option<usize>) -> bool {
        let under = |p: &str| {
            path == p || path.starts_with(&format!("{p}.")) || path.starts_with(&format!("{p}["))
        };
        let offer = day_pass.map(|i| format!("offers[{i}]"));
        match self {
            Self::Name => under("name"),
            Self::Description => under("description"),
            Self::OpeningHours => under("opening_hours"),
            Self::MemberHours => under("member_access_hours"),
            Self::Website => under("contact.website"),
            Self::Email => under("contact.email"),
            Self::Phone => under("contact.phone"),
            Self::Currency => offer.is_some_and(|o| path == format!("{o}.currency")),
            Self::DayPass => offer.is_some_and(|o| under(&o) && path != format!("{o}.currency")),
            Self::WifiDown => under("internet.down_mbps"),
        }
    }
}

/// The form's state: one text per field, an error per field, and a line for errors no field owns.
#[derive(Clone, Debug)]
pub(crate) struct Form {
    pub(crate) values: Vec<String>,
    pub(crate) errors: Vec<Option<String>>,
    pub(crate) general: Option<String>,
    /// The focused field; `FieldId::ALL.len()` is the Save button.
    pub(crate) cursor: usize,
    original: Listing,
}

impl Form {
    pub(crate) fn new(l: &Listing) -> Self {
        let day_pass = l.day_pass();
        let values = FieldId::ALL
            .iter()
            .map(|f| match f {
                FieldId::Name => l.name.clone(),
                FieldId::Description => l.description.clone(),
                FieldId::OpeningHours => l.opening_hours.clone().unwrap_or_default(),
                FieldId::MemberHours => l.member_access_hours.clone().unwrap_or_default(),
                FieldId::Website => l.contact.website.clone().unwrap_or_default(),
                FieldId::Email => l.contact.email.clone().unwrap_or_default(),
                FieldId::Phone => l.contact.phone.clone().unwrap_or_default(),
                FieldId::DayPass => day_pass.map(|o| o.price.to_string()).unwrap_or_default(),
                FieldId::Currency => day_pass
                    .map(|o| o.currency.clone())
                    .or_else(|| l.offers.first().map(|o| o.currency.clone()))
                    .unwrap_or_else(|| "EUR".to_string()),
                FieldId::WifiDown => l
                    .internet
                    .down_mbps
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            })
            .collect();
        Self {
            values,
            errors: vec![None; FieldId::ALL.len()],
            general: None,
            cursor: 0,
            original: l.clone(),
        }
    }

    pub(crate) fn on_save(&self) -> bool {
        self.cursor == FieldId::ALL.len()
    }

    pub(crate) fn next(&mut self) {
        self.cursor = (self.cursor + 1) % (FieldId::ALL.len() + 1);
    }

    pub(crate) fn prev(&mut self) {
        self.cursor = self.cursor.checked_sub(1).unwrap_or(FieldId::ALL.len());
    }

    pub(crate) fn push(&mut self, c: char) {
        if let Some(v) = self.values.get_mut(self.cursor) {
            v.push(c);
        }
    }

    pub(crate) fn push_str(&mut self, s: &str) {
        if let Some(v) = self.values.get_mut(self.cursor) {
            // A paste is one line of a form field: line breaks become spaces.
            v.extend(s.chars().map(|c| if c.is_control() { ' ' } else { c }));
        }
    }

    pub(crate) fn backspace(&mut self) {
        if let Some(v) = self.values.get_mut(self.cursor) {
            v.pop();
        }
    }

    pub(crate) fn clear(&mut self) {
        if let Some(v) = self.values.get_mut(self.cursor) {
            v.clear();
        }
    }

    fn value(&self, f: FieldId) -> &str {
        let i = FieldId::ALL.iter().position(|x| *x == f).unwrap_or(0);
        self.values.get(i).map_or("", |s| s.trim())
    }

    fn set_error(&mut self, f: FieldId, message: String) {
        if let Some(i) = FieldId::ALL.iter().position(|x| *x == f) {
            if self.errors[i].is_none() {
                self.errors[i] = Some(message);
            }
        }
    }

    /// The listing the form describes, or `None` with the errors set in place.
    pub(crate) fn build(&mut self) -> Option<Listing> {
        self.errors = vec![None; FieldId::ALL.len()];
        self.general = None;
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());

        let mut l = self.original.clone();
        l.name = self.value(FieldId::Name).to_string();
        l.description = self.value(FieldId::Description).to_string();
        l.opening_hours = opt(self.value(FieldId::OpeningHours));
        l.member_access_hours = opt(self.value(FieldId::MemberHours));
        l.contact.website = opt(self.value(FieldId::Website));
        l.contact.email = opt(self.value(FieldId::Email));
        l.contact.phone = opt(self.value(FieldId::Phone));

        // The form edits the cheapest day pass; clearing the price removes every day pass.
        let cheapest = l
            .offers
            .iter()
            .enumerate()
            .filter(|(_, o)| o.product == Product::DayPass)
            .min_by(|a, b| a.1.price.total_cmp(&b.1.price))
            .map(|(i, _)| i);
        let price = self.value(FieldId::DayPass).to_string();
        let currency = self.value(FieldId::Currency).to_string();
        let mut day_pass = None;
        if price.is_empty() {
            l.offers.retain(|o| o.product != Product::DayPass);
        } else {
            match price.parse::<f64>() {
                Ok(p) => {
                    let i = match cheapest {
                        Some(i) => i,
                        None => {
                            l.offers.push(Offer {
                                product: Product::DayPass,
                                price: p,
                                currency: currency.clone(),
                                booking: Booking::WalkIn,
                            });
                            l.offers.len() - 1
                        }
                    };
                    l.offers[i].price = p;
                    l.offers[i].currency = currency;
                    day_pass = Some(i);
                }
                Err(_) => self.set_error(FieldId::DayPass, format!("{price:?} is not a number")),
            }
        }
        let wifi = self.value(FieldId::WifiDown).to_string();
        if wifi.is_empty() {
            l.internet.down_mbps = None;
        } else {
            match wifi.parse::<f64>() {
                Ok(v) => l.internet.down_mbps = Some(v),
                Err(_) => self.set_error(FieldId::WifiDown, format!("{wifi:?} is not a number")),
            }
        }
        l.normalise();

        for p in l.problems() {
            self.place(&p.path, &p.message, day_pass);
        }
        let ok = self.errors.iter().all(Option::is_none) && self.general.is_none();
        ok.then_some(l)
    }

    /// Show an error from the node: next to the field its path names, else on the general line.
    pub(crate) fn show_error(&mut self, text: &str) {
        let day_pass = self
            .original
            .offers
            .iter()
            .position(|o| o.product == Product::DayPass);
        match text.split_once(": ") {
            Some((path, msg)) if !path.contains(' ') => self.place(path, msg, day_pass),
            _ => self.general = Some(text.to_string()),
        }
    }

    fn place(&mut self, path: &str, message: &str, day_pass: Option<usize>) {
        match FieldId::ALL.iter().find(|f| f.owns(path, day_pass)) {
            Some(f) => self.set_error(*f, message.to_string()),
            None if self.general.is_none() => self.general = Some(format!("{path}: {message}")),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Listing {
        let id = "sp-aaaaaaaaaaaaaaaa".parse().unwrap();
        let mut l = Listing::new_minimal(id, "Desk", 38.7, -9.1, "Lisbon", "PT", "Europe/Lisbon");
        l.opening_hours = Some("Mo-Fr 08:00-18:00".into());
        l
    }

    fn set(form: &mut Form, f: FieldId, v: &str) {
        form.cursor = FieldId::ALL.iter().position(|x| *x == f).unwrap();
        form.clear();
        form.push_str(v);
    }

    #[test]
    fn unchanged_form_builds_the_same_listing() {
        let l = listing();
        let mut f = Form::new(&l);
        assert_eq!(f.build(), Some(l));
    }

    #[test]
    fn errors_land_on_their_fields() {
        let mut f = Form::new(&listing());
        set(&mut f, FieldId::Name, "");
        set(&mut f, FieldId::OpeningHours, "Mo-Fr 8 to 6");
        set(&mut f, FieldId::DayPass, "twelve");
        set(&mut f, FieldId::WifiDown, "-5");
        assert_eq!(f.build(), None);
        let err =
            |id: FieldId| f.errors[FieldId::ALL.iter().position(|x| *x == id).unwrap()].clone();
        assert_eq!(err(FieldId::Name).as_deref(), Some("must not be empty"));
        assert!(err(FieldId::OpeningHours)
            .unwrap()
            .contains("not valid OSM opening_hours"));
        assert_eq!(
            err(FieldId::DayPass).as_deref(),
            Some("\"twelve\" is not a number")
        );
        assert!(err(FieldId::WifiDown).is_some());
        assert_eq!(err(FieldId::Website), None);
    }

    #[test]
    fn day_pass_is_added_and_its_currency_checked() {
        let mut f = Form::new(&listing());
        set(&mut f, FieldId::DayPass, "12.5");
        set(&mut f, FieldId::Currency, "eur");
        assert_eq!(f.build(), None);
        let cur = FieldId::ALL
            .iter()
            .position(|x| *x == FieldId::Currency)
            .unwrap();
        assert!(
            f.errors[cur].as_deref().unwrap_or("").contains("ISO 4217"),
            "{:?}",
            f.errors
        );
        set(&mut f, FieldId::Currency, "EUR");
        let l = f.build().unwrap();
        assert_eq!(l.day_pass().map(|o| o.price), Some(12.5));
    }

    #[test]
    fn node_errors_are_placed_by_path() {
        let mut f = Form::new(&listing());
        f.show_error("contact.website: \"ftp://x\" must start with https://");
        assert!(f.errors[4].is_some());
        f.show_error("the store is read-only");
        assert_eq!(f.general.as_deref(), Some("the store is read-only"));
    }
}
