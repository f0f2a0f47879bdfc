//! The filter panel: what members filter by, as a list of items that toggle or step through values, and
//! the one-line summary of active filters that is always on screen.

use deskmesh_crdt_model::{AccessNeed, Amenity, Query};

/// Steps for the maximum day-pass price (in each listing's own currency; amounts are never converted).
pub(crate) const PRICE_STEPS: &[f64] = &[0.0, 10.0, 15.0, 20.0, 30.0, 50.0];
/// Steps for the minimum measured download speed, Mbit/s.
pub(crate) const WIFI_STEPS: &[f64] = &[25.0, 50.0, 100.0, 300.0, 1000.0];

/// The active filters (besides the search text).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Filters {
    pub(crate) open_now: bool,
    pub(crate) seats_free: bool,
    /// Index into [`PRICE_STEPS`].
    pub(crate) max_price: Option<usize>,
    /// Index into [`WIFI_STEPS`].
    pub(crate) min_wifi: Option<usize>,
    pub(crate) visa: bool,
    pub(crate) access: Vec<AccessNeed>,
    pub(crate) amenities: Vec<Amenity>,
    /// The other filters read only facts a coordinator verified.
    pub(crate) verified_only: bool,
}

/// One line of the filter panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    OpenNow,
    SeatsFree,
    MaxPrice,
    MinWifi,
    Visa,
    Access(AccessNeed),
    Amenity(Amenity),
    VerifiedOnly,
}

/// Every panel item, in panel order: what surveys say members care about most comes first.
pub(crate) fn items() -> Vec<Item> {
    let mut v = vec![
        Item::OpenNow,
        Item::SeatsFree,
        Item::MaxPrice,
        Item::MinWifi,
    ];
    v.extend(AccessNeed::ALL.iter().map(|a| Item::Access(*a)));
    v.extend(Amenity::ALL.iter().map(|a| Item::Amenity(*a)));
    v.push(Item::Visa);
    v.push(Item::VerifiedOnly);
    v
}

/// `meeting_room` as "meeting room".
pub(crate) fn words(s: &str) -> String {
    s.replace('_', " ")
}

impl Filters {
    /// Whether the result depends on the clock or on live seats, so it must be refreshed as time passes.
    pub(crate) fn time_dependent(&self) -> bool {
        self.open_now || self.seats_free
    }

    /// Turn an item on or off; value items step up from off (and wrap back to off).
    pub(crate) fn toggle(&mut self, item: Item) {
        match item {
            Item::OpenNow => self.open_now = !self.open_now,
            Item::SeatsFree => self.seats_free = !self.seats_free,
            Item::Visa => self.visa = !self.visa,
            Item::VerifiedOnly => self.verified_only = !self.verified_only,
            Item::MaxPrice => self.max_price = step(self.max_price, PRICE_STEPS.len(), true),
            Item::MinWifi => self.min_wifi = step(self.min_wifi, WIFI_STEPS.len(), true),
            Item::Access(a) => flip(&mut self.access, a),
            Item::Amenity(a) => flip(&mut self.amenities, a),
        }
    }

    /// Step a value item down (left arrow); other items just toggle.
    pub(crate) fn step_back(&mut self, item: Item) {
        match item {
            Item::MaxPrice => self.max_price = step(self.max_price, PRICE_STEPS.len(), false),
            Item::MinWifi => self.min_wifi = step(self.min_wifi, WIFI_STEPS.len(), false),
            other => self.toggle(other),
        }
    }

    pub(crate) fn is_on(&self, item: Item) -> bool {
        match item {
            Item::OpenNow => self.open_now,
            Item::SeatsFree => self.seats_free,
            Item::Visa => self.visa,
            Item::VerifiedOnly => self.verified_only,
            Item::MaxPrice => self.max_price.is_some(),
            Item::MinWifi => self.min_wifi.is_some(),
            Item::Access(a) => self.access.contains(&a),
            Item::Amenity(a) => self.amenities.contains(&a),
        }
    }

    /// The panel text of an item: "open now", "day pass ≤ 20", "wifi ≥ 100 Mbit/s", "wheelchair".
    pub(crate) fn item_text(&self, item: Item) -> String {
        match item {
            Item::OpenNow => "open now".into(),
            Item::SeatsFree => "seats free now".into(),
            Item::Visa => "coworking visa".into(),
            Item::VerifiedOnly => "verified facts only".into(),
            Item::MaxPrice => match self.max_price.and_then(|i| PRICE_STEPS.get(i)) {
                Some(p) if *p == 0.0 => "day pass: free".into(),
                Some(p) => format!("day pass ≤ {p}"),
                None => "day pass: any price".into(),
            },
            Item::MinWifi => match self.min_wifi.and_then(|i| WIFI_STEPS.get(i)) {
                Some(w) => format!("wifi ≥ {w} Mbit/s"),
                None => "wifi: any speed".into(),
            },
            Item::Access(a) => words(a.as_str()),
            Item::Amenity(a) => words(a.as_str()),
        }
    }

    /// The active filters as short phrases, in panel order, for the always-visible filter line.
    pub(crate) fn active(&self) -> Vec<String> {
        items()
            .into_iter()
            .filter(|i| self.is_on(*i))
            .map(|i| self.item_text(i))
            .collect()
    }

    /// The directory query for these filters and the search text.
    pub(crate) fn query(&self, search: &str) -> Query {
        let text = search.trim();
        Query {
            text: (!text.is_empty()).then(|| text.to_string()),
            amenities: self.amenities.clone(),
            access: self.access.clone(),
            open_now: self.open_now,
            seats_free_now: self.seats_free,
            max_day_pass_price: self.max_price.and_then(|i| PRICE_STEPS.get(i).copied()),
            min_wifi_down_mbps: self.min_wifi.and_then(|i| WIFI_STEPS.get(i).copied()),
            coworking_visa: self.visa,
            verified_only: self.verified_only,
            ..Query::default()
        }
    }
}

fn flip<T: PartialEq + Copy>(v: &mut Vec<T>, x: T) {
    if let Some(i) = v.iter().position(|y| *y == x) {
        v.remove(i);
    } else {
        v.push(x);
    }
}

/// Off, then each step in turn, then off again (or the same backwards).
fn step(at: Option<usize>, len: usize, up: bool) -> Option<usize> {
    match (at, up) {
        (None, true) => Some(0),
        (None, false) => len.checked_sub(1),
        (Some(i), true) => (i + 1 < len).then_some(i + 1),
        (Some(i), false) => i.checked_sub(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_items_cycle_through_off() {
        let mut f = Filters::default();
        let mut seen = Vec::new();
        for _ in 0..=PRICE_STEPS.len() {
            f.toggle(Item::MaxPrice);
            seen.push(f.max_price);
        }
        assert_eq!(seen.first(), Some(&Some(0)));
        assert_eq!(seen.last(), Some(&None));
        f.step_back(Item::MaxPrice);
        assert_eq!(f.max_price, Some(PRICE_STEPS.len() - 1));
    }

    #[test]
    fn query_carries_every_filter() {
        let mut f = Filters::default();
        f.toggle(Item::OpenNow);
        f.toggle(Item::MinWifi);
        f.toggle(Item::MinWifi);
        f.toggle(Item::Access(AccessNeed::HearingLoop));
        f.toggle(Item::Amenity(Amenity::Coffee));
        let q = f.query("  berlin ");
        assert_eq!(q.text.as_deref(), Some("berlin"));
        assert!(q.open_now);
        assert_eq!(q.min_wifi_down_mbps, Some(50.0));
        assert_eq!(q.access, vec![AccessNeed::HearingLoop]);
        assert_eq!(q.amenities, vec![Amenity::Coffee]);
        assert_eq!(
            f.active(),
            vec!["open now", "wifi ≥ 50 Mbit/s", "hearing loop", "coffee"]
        );
        f.toggle(Item::Amenity(Amenity::Coffee));
        assert!(f.query("").amenities.is_empty());
        f.toggle(Item::VerifiedOnly);
        assert!(f.query("").verified_only);
        assert_eq!(f.query(" ").text, None);
    }
}
