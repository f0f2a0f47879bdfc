//! The operator's listing form: the node's own listing as editable text, from its name and address to its
//! amenities, accessibility and seat pools, turned back into a [`Listing`] and validated with the model's
//! own rules, each problem shown next to the field it names. The same form writes a new space's first
//! listing ([`Form::first`]). Fields whose value is a list are written as text: amenities separated by
//! commas, seat pools as `id kind seats access` separated by `;`. The focused field shows its allowed
//! values, so nothing has to be guessed.

use std::str::FromStr;

use deskmesh_crdt_model::listing::{
    AccessibleDesks, Amenities, Amenity, AmenityDetail, Booking, Category, Entrance, Offer,
    PoolAccess, PoolKind, Product, SeatPool, Wheelchair,
};
use deskmesh_crdt_model::Listing;
use deskmesh_keys::SpaceId;

/// An editable field of the form, in form order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldId {
    Name,
    Description,
    Category,
    Street,
    City,
    Postcode,
    Country,
    Lat,
    Lon,
    Timezone,
    OpeningHours,
    MemberHours,
    Website,
    Email,
    Phone,
    DayPass,
    Currency,
    WifiDown,
    Amenities,
    Wheelchair,
    StepFree,
    AccessibleToilet,
    HearingLoop,
    QuietRoom,
    SeatPools,
}

impl FieldId {
    pub(crate) const ALL: [FieldId; 25] = [
        Self::Name,
        Self::Description,
        Self::Category,
        Self::Street,
        Self::City,
        Self::Postcode,
        Self::Country,
        Self::Lat,
        Self::Lon,
        Self::Timezone,
        Self::OpeningHours,
        Self::MemberHours,
        Self::Website,
        Self::Email,
        Self::Phone,
        Self::DayPass,
        Self::Currency,
        Self::WifiDown,
        Self::Amenities,
        Self::Wheelchair,
        Self::StepFree,
        Self::AccessibleToilet,
        Self::HearingLoop,
        Self::QuietRoom,
        Self::SeatPools,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Description => "description",
            Self::Category => "category",
            Self::Street => "street",
            Self::City => "city",
            Self::Postcode => "postcode",
            Self::Country => "country",
            Self::Lat => "latitude",
            Self::Lon => "longitude",
            Self::Timezone => "time zone",
            Self::OpeningHours => "opening hours",
            Self::MemberHours => "member access",
            Self::Website => "website",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::DayPass => "day pass price",
            Self::Currency => "currency",
            Self::WifiDown => "wifi down Mbit/s",
            Self::Amenities => "amenities",
            Self::Wheelchair => "wheelchair",
            Self::StepFree => "step-free entry",
            Self::AccessibleToilet => "accessible toilet",
            Self::HearingLoop => "hearing loop",
            Self::QuietRoom => "quiet room",
            Self::SeatPools => "seat pools",
        }
    }

    /// What the field takes, shown under it while it has the focus.
    pub(crate) fn help(self) -> String {
        let yes_no = "yes, no, or empty for unknown".to_string();
        match self {
            Self::Name => "the name members see".into(),
            Self::Description => "plain text for members".into(),
            Self::Category => format!("one of: {}", Category::NAMES.join(", ")),
            Self::Street | Self::Postcode => "as on letters; optional".into(),
            Self::City => "the city, as members search for it".into(),
            Self::Country => "ISO 3166 code, upper case: PT, DE, GB".into(),
            Self::Lat | Self::Lon => {
                "decimal degrees of the entrance, such as 38.7139 and -9.1394".into()
            }
            Self::Timezone => "IANA time zone, such as Europe/Lisbon".into(),
            Self::OpeningHours | Self::MemberHours => {
                "OpenStreetMap syntax: Mo-Fr 08:00-19:00; Sa 10:00-14:00".into()
            }
            Self::Website => "https://...".into(),
            Self::Email | Self::Phone => "optional".into(),
            Self::DayPass => "a price in the currency below; empty for none".into(),
            Self::Currency => "ISO 4217 code: EUR, USD, JPY".into(),
            Self::WifiDown => "measured download speed".into(),
            Self::Amenities => format!("separated by commas: {}", Amenity::NAMES.join(", ")),
            Self::Wheelchair => format!("{}, or empty for unknown", Wheelchair::NAMES.join(", ")),
            Self::StepFree | Self::AccessibleToilet | Self::HearingLoop | Self::QuietRoom => yes_no,
            Self::SeatPools => format!(
                "id kind seats access; ... kinds: {}; access: {}",
                PoolKind::NAMES.join(", "),
                PoolAccess::NAMES.join(", ")
            ),
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
            Self::Category => under("category"),
            Self::Street => under("location.address.street"),
            Self::City => under("location.address.city"),
            Self::Postcode => under("location.address.postcode"),
            Self::Country => under("location.address.country"),
            // "location" alone is the (0, 0) rule: shown on the latitude.
            Self::Lat => path == "location" || under("location.lat"),
            Self::Lon => under("location.lon"),
            Self::Timezone => under("location.timezone"),
            Self::OpeningHours => under("opening_hours"),
            Self::MemberHours => under("member_access_hours"),
            Self::Website => under("contact.website"),
            Self::Email => under("contact.email"),
            Self::Phone => under("contact.phone"),
            Self::Currency => offer.is_some_and(|o| path == format!("{o}.currency")),
            Self::DayPass => offer.is_some_and(|o| under(&o) && path != format!("{o}.currency")),
            Self::WifiDown => under("internet.down_mbps"),
            Self::Amenities => under("amenities"),
            Self::Wheelchair => under("accessibility.wheelchair"),
            Self::StepFree => under("accessibility.entrance"),
            Self::AccessibleToilet => under("accessibility.toilets_wheelchair"),
            Self::HearingLoop => under("accessibility.hearing_loop"),
            Self::QuietRoom => under("accessibility.quiet_room"),
            Self::SeatPools => under("seat_pools"),
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
    /// Esc was pressed on a changed form: the next key says whether to discard.
    pub(crate) confirming: bool,
    /// Whether this writes the space's first listing.
    pub(crate) first: bool,
    initial: Vec<String>,
    original: Listing,
}

fn yes_no(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => String::new(),
    }
}

fn coordinate(v: f64) -> String {
    if v == 0.0 {
        String::new()
    } else {
        v.to_string()
    }
}

impl Form {
    pub(crate) fn new(l: &Listing) -> Self {
        let day_pass = l.day_pass();
        let a = &l.accessibility;
        let values: Vec<String> = FieldId::ALL
            .iter()
            .map(|f| match f {
                FieldId::Name => l.name.clone(),
                FieldId::Description => l.description.clone(),
                FieldId::Category => l.category.as_str().to_string(),
                FieldId::Street => l.location.address.street.clone().unwrap_or_default(),
                FieldId::City => l.location.address.city.clone(),
                FieldId::Postcode => l.location.address.postcode.clone().unwrap_or_default(),
                FieldId::Country => l.location.address.country.clone(),
                FieldId::Lat => coordinate(l.location.lat),
                FieldId::Lon => coordinate(l.location.lon),
                FieldId::Timezone => l.location.timezone.clone(),
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
                FieldId::Amenities => l
                    .amenities
                    .iter()
                    .map(|(a, _)| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                FieldId::Wheelchair => a
                    .wheelchair
                    .map(|w| w.as_str().to_string())
                    .unwrap_or_default(),
                FieldId::StepFree => yes_no(a.entrance.as_ref().and_then(|e| e.step_free)),
                FieldId::AccessibleToilet => yes_no(a.toilets_wheelchair),
                FieldId::HearingLoop => yes_no(a.hearing_loop),
                FieldId::QuietRoom => yes_no(a.quiet_room),
                FieldId::SeatPools => l
                    .seat_pools
                    .iter()
                    .map(|p| format!("{} {} {} {}", p.id, p.kind, p.capacity, p.access))
                    .collect::<Vec<_>>()
                    .join("; "),
            })
            .collect();
        Self {
            initial: values.clone(),
            values,
            errors: vec![None; FieldId::ALL.len()],
            general: None,
            cursor: 0,
            confirming: false,
            first: false,
            original: l.clone(),
        }
    }

    /// The form for a space's first listing: its id and admitted name, a hot-desk pool to fill in, and
    /// nothing else assumed.
    pub(crate) fn first(id: SpaceId, name: String) -> Self {
        let l = Listing::new_minimal(id, name, 0.0, 0.0, "", "", "");
        let mut f = Self::new(&l);
        f.set(FieldId::SeatPools, "hot-desks hot_desk 10 walk_in");
        f.first = true;
        f
    }

    fn index(f: FieldId) -> usize {
        FieldId::ALL.iter().position(|x| *x == f).unwrap_or(0)
    }

    fn set(&mut self, f: FieldId, v: &str) {
        let i = Self::index(f);
        self.values[i] = v.to_string();
    }

    /// Whether any field differs from what the form started with.
    pub(crate) fn changed(&self) -> bool {
        self.values != self.initial
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
        self.values.get(Self::index(f)).map_or("", |s| s.trim())
    }

    fn set_error(&mut self, f: FieldId, message: String) {
        let i = Self::index(f);
        if self.errors[i].is_none() {
            self.errors[i] = Some(message);
        }
    }

    /// A yes/no/unknown field.
    fn three_state(&mut self, f: FieldId) -> Option<bool> {
        match self.value(f).to_ascii_lowercase().as_str() {
            "" | "unknown" | "?" => None,
            "yes" | "y" | "true" => Some(true),
            "no" | "n" | "false" => Some(false),
            other => {
                let msg = format!("{other:?}: write yes, no, or leave it empty for unknown");
                self.set_error(f, msg);
                None
            }
        }
    }

    fn number(&mut self, f: FieldId) -> Option<f64> {
        let text = self.value(f).to_string();
        if text.is_empty() {
            return None;
        }
        match text.parse::<f64>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.set_error(f, format!("{text:?} is not a number"));
                None
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
        match Category::from_str(self.value(FieldId::Category)) {
            Ok(c) => l.category = c,
            Err(e) => self.set_error(FieldId::Category, e.to_string()),
        }
        let addr = &mut l.location.address;
        addr.street = opt(self.value(FieldId::Street));
        addr.city = self.value(FieldId::City).to_string();
        addr.postcode = opt(self.value(FieldId::Postcode));
        addr.country = self.value(FieldId::Country).to_string();
        for (f, slot) in [(FieldId::Lat, 0), (FieldId::Lon, 1)] {
            let v = self.number(f);
            if v.is_none() && self.errors[Self::index(f)].is_none() {
                self.set_error(f, "is required".into());
            }
            let v = v.unwrap_or(0.0);
            if slot == 0 {
                l.location.lat = v;
            } else {
                l.location.lon = v;
            }
        }
        l.location.timezone = self.value(FieldId::Timezone).to_string();
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
        } else if let Some(p) = self.number(FieldId::DayPass) {
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
        l.internet.down_mbps = self.number(FieldId::WifiDown);

        self.amenities(&mut l);
        self.accessibility(&mut l);
        self.pools(&mut l);
        l.normalise();

        for p in l.problems() {
            self.place(&p.path, &p.message, day_pass);
        }
        let ok = self.errors.iter().all(Option::is_none) && self.general.is_none();
        ok.then_some(l)
    }

    /// Amenities as named, keeping the fee noted for any that stays.
    fn amenities(&mut self, l: &mut Listing) {
        let mut out = Amenities::default();
        let text = self.value(FieldId::Amenities).to_string();
        for name in text
            .split([',', ';'])
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            match Amenity::from_str(name) {
                Ok(a) => out.insert(
                    a,
                    l.amenities
                        .0
                        .get(&a)
                        .copied()
                        .unwrap_or(AmenityDetail::default()),
                ),
                Err(e) => {
                    self.set_error(FieldId::Amenities, e.to_string());
                    return;
                }
            }
        }
        l.amenities = out;
    }

    fn accessibility(&mut self, l: &mut Listing) {
        let wheel = self.value(FieldId::Wheelchair).to_string();
        l.accessibility.wheelchair = if wheel.is_empty() {
            None
        } else {
            match Wheelchair::from_str(&wheel) {
                Ok(w) => Some(w),
                Err(e) => {
                    self.set_error(FieldId::Wheelchair, e.to_string());
                    None
                }
            }
        };
        let step_free = self.three_state(FieldId::StepFree);
        let mut entrance = l.accessibility.entrance.clone().unwrap_or_default();
        entrance.step_free = step_free;
        if step_free == Some(true) && entrance.step_height_cm.is_some_and(|h| h > 0) {
            entrance.step_height_cm = Some(0);
        }
        l.accessibility.entrance = (entrance != Entrance::default()).then_some(entrance);
        l.accessibility.toilets_wheelchair = self.three_state(FieldId::AccessibleToilet);
        l.accessibility.hearing_loop = self.three_state(FieldId::HearingLoop);
        l.accessibility.quiet_room = self.three_state(FieldId::QuietRoom);
        if l.accessibility.accessible_desks == Some(AccessibleDesks::default()) {
            l.accessibility.accessible_desks = None;
        }
    }

    /// Seat pools written `id kind seats access`, separated by `;`; a pool that keeps its id keeps its
    /// accessible seats.
    fn pools(&mut self, l: &mut Listing) {
        let text = self.value(FieldId::SeatPools).to_string();
        let mut pools = Vec::new();
        for (i, item) in text
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let words: Vec<&str> = item.split_whitespace().collect();
            let [id, kind, seats, access] = words[..] else {
                self.set_error(
                    FieldId::SeatPools,
                    format!("pool {}: write `id kind seats access`, such as `hot-desks hot_desk 20 walk_in`", i + 1),
                );
                return;
            };
            let kind = match PoolKind::from_str(kind) {
                Ok(k) => k,
                Err(e) => return self.set_error(FieldId::SeatPools, format!("pool {id}: {e}")),
            };
            let Ok(capacity) = seats.parse::<u32>() else {
                return self.set_error(
                    FieldId::SeatPools,
                    format!("pool {id}: {seats:?} is not a number of seats"),
                );
            };
            let access = match PoolAccess::from_str(access) {
                Ok(a) => a,
                Err(e) => return self.set_error(FieldId::SeatPools, format!("pool {id}: {e}")),
            };
            let accessible_capacity = l
                .seat_pools
                .iter()
                .find(|p| p.id == id)
                .and_then(|p| p.accessible_capacity)
                .map(|a| a.min(capacity));
            pools.push(SeatPool {
                id: id.to_string(),
                kind,
                capacity,
                accessible_capacity,
                access,
            });
        }
        l.seat_pools = pools;
    }

    /// Show an error from the node: each line next to the field its path names, else on the general line.
    pub(crate) fn show_error(&mut self, text: &str) {
        let day_pass = self
            .original
            .offers
            .iter()
            .position(|o| o.product == Product::DayPass);
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.split_once(": ") {
                Some((path, msg)) if !path.contains(' ') => self.place(path, msg, day_pass),
                _ if line.ends_with("problems:") => {}
                _ => {
                    if self.general.is_none() {
                        self.general = Some(line.to_string());
                    }
                }
            }
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
        form.cursor = Form::index(f);
        form.clear();
        form.push_str(v);
    }

    fn err(f: &Form, id: FieldId) -> Option<String> {
        f.errors[Form::index(id)].clone()
    }

    #[test]
    fn unchanged_form_builds_the_same_listing() {
        let l = listing();
        let mut f = Form::new(&l);
        assert!(!f.changed());
        assert_eq!(f.build(), Some(l));
    }

    #[test]
    fn errors_land_on_their_fields() {
        let mut f = Form::new(&listing());
        set(&mut f, FieldId::Name, "");
        set(&mut f, FieldId::OpeningHours, "Mo-Fr 8 to 6");
        set(&mut f, FieldId::DayPass, "twelve");
        set(&mut f, FieldId::WifiDown, "-5");
        set(&mut f, FieldId::Amenities, "coffee, jacuzzi");
        set(&mut f, FieldId::SeatPools, "hot hot_desk lots walk_in");
        set(&mut f, FieldId::HearingLoop, "maybe");
        assert!(f.changed());
        assert_eq!(f.build(), None);
        assert_eq!(err(&f, FieldId::Name).as_deref(), Some("must not be empty"));
        assert!(err(&f, FieldId::OpeningHours)
            .unwrap()
            .contains("not valid OSM opening_hours"));
        assert_eq!(
            err(&f, FieldId::DayPass).as_deref(),
            Some("\"twelve\" is not a number")
        );
        assert!(err(&f, FieldId::WifiDown).is_some());
        assert!(err(&f, FieldId::Amenities).unwrap().contains("jacuzzi"));
        assert!(err(&f, FieldId::SeatPools).unwrap().contains("\"lots\""));
        assert!(err(&f, FieldId::HearingLoop).is_some());
        assert_eq!(err(&f, FieldId::Website), None);
    }

    #[test]
    fn address_amenities_accessibility_and_pools_are_edited() {
        let mut f = Form::new(&listing());
        set(&mut f, FieldId::Street, "Rua Nova 1");
        set(&mut f, FieldId::Amenities, "coffee, phone-booth");
        set(&mut f, FieldId::Wheelchair, "limited");
        set(&mut f, FieldId::StepFree, "no");
        set(&mut f, FieldId::QuietRoom, "yes");
        set(
            &mut f,
            FieldId::SeatPools,
            "hot-desks hot_desk 20 walk_in; room meeting_room 1 book",
        );
        let l = f.build().unwrap();
        assert_eq!(l.location.address.street.as_deref(), Some("Rua Nova 1"));
        assert!(l.amenities.contains(Amenity::PhoneBooth));
        assert_eq!(l.accessibility.wheelchair, Some(Wheelchair::Limited));
        assert_eq!(l.accessibility.entrance.unwrap().step_free, Some(false));
        assert_eq!(l.accessibility.quiet_room, Some(true));
        assert_eq!(l.accessibility.hearing_loop, None, "empty stays unknown");
        assert_eq!(l.seat_pools.len(), 2);
        assert_eq!(l.seat_pools[1].kind, PoolKind::MeetingRoom);
    }

    #[test]
    fn a_first_listing_needs_its_place_and_then_validates() {
        let id: SpaceId = "sp-aaaaaaaaaaaaaaaa".parse().unwrap();
        let mut f = Form::first(id.clone(), "Casa".into());
        assert!(f.first);
        assert_eq!(f.build(), None);
        for field in [
            FieldId::City,
            FieldId::Country,
            FieldId::Lat,
            FieldId::Lon,
            FieldId::Timezone,
        ] {
            assert!(err(&f, field).is_some(), "{field:?}: {:?}", f.errors);
        }
        set(&mut f, FieldId::City, "Lisbon");
        set(&mut f, FieldId::Country, "PT");
        set(&mut f, FieldId::Lat, "38.7139");
        set(&mut f, FieldId::Lon, "-9.1394");
        set(&mut f, FieldId::Timezone, "Europe/Lisbon");
        let l = f.build().unwrap();
        assert_eq!((l.id, l.name.as_str()), (id, "Casa"));
        assert_eq!(l.seat_pools[0].capacity, 10);
    }

    #[test]
    fn day_pass_is_added_and_its_currency_checked() {
        let mut f = Form::new(&listing());
        set(&mut f, FieldId::DayPass, "12.5");
        set(&mut f, FieldId::Currency, "eur");
        assert_eq!(f.build(), None);
        assert!(
            err(&f, FieldId::Currency)
                .unwrap_or_default()
                .contains("ISO 4217"),
            "{:?}",
            f.errors
        );
        set(&mut f, FieldId::Currency, "EUR");
        let l = f.build().unwrap();
        assert_eq!(l.day_pass().map(|o| o.price), Some(12.5));
    }

    #[test]
    fn node_errors_are_placed_by_path_one_per_line() {
        let mut f = Form::new(&listing());
        f.show_error("2 problems:\n  contact.website: \"ftp://x\" must start with https://\n  seat_pools[0].capacity: must be at least 1");
        assert!(err(&f, FieldId::Website).is_some());
        assert!(err(&f, FieldId::SeatPools).is_some());
        assert_eq!(f.general, None);
        f.show_error("the store is read-only");
        assert_eq!(f.general.as_deref(), Some("the store is read-only"));
    }
}
