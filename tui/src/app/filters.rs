//! The filter panel: what members filter by, as a list of items that toggle or step through values, and
//! the one-line summary of active filters that is always on screen.

use deskmesh_crdt_model::listing::Product;
use deskmesh_crdt_model::{AccessNeed, Amenity, Query};

use crate::model::SpaceView;

/// At most this many price steps per currency.
const MAX_PRICE_STEPS: usize = 8;
/// Steps for the minimum measured download speed, Mbit/s.
pub(crate) const WIFI_STEPS: &[f64] = &[25.0, 50.0, 100.0, 300.0, 1000.0];

/// The active filters (besides the search text).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Filters {
    pub(crate) open_now: bool,
    pub(crate) seats_free: bool,
    /// The currency prices are filtered (and sorted first) in; amounts are never converted.
    pub(crate) currency: Option<String>,
    /// Index into the price steps of [`Filters::currency`].
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
    Currency,
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
        Item::Currency,
        Item::MaxPrice,
        Item::MinWifi,
    ];
    v.extend(AccessNeed::ALL.iter().map(|a| Item::Access(*a)));
    v.extend(Amenity::ALL.iter().map(|a| Item::Amenity(*a)));
    v.push(Item::Visa);
    v.push(Item::VerifiedOnly);
    v
}

/// Each currency of the directory's day passes, most used first (then by code), with its price steps:
/// the distinct prices, thinned to at most eight.
pub(crate) fn currencies(spaces: &[SpaceView]) -> Vec<(String, Vec<f64>)> {
    let mut by: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for s in spaces {
        for o in s
            .listing
            .offers
            .iter()
            .filter(|o| o.product == Product::DayPass)
        {
            by.entry(o.currency.as_str()).or_default().push(o.price);
        }
    }
    let mut out: Vec<(usize, String, Vec<f64>)> = by
        .into_iter()
        .map(|(c, mut prices)| {
            let n = prices.len();
            prices.sort_by(f64::total_cmp);
            prices.dedup();
            if prices.len() > MAX_PRICE_STEPS {
                let k = prices.len();
                prices = (0..MAX_PRICE_STEPS)
                    .map(|i| prices[i * (k - 1) / (MAX_PRICE_STEPS - 1)])
                    .collect();
                prices.dedup();
            }
            (n, c.to_string(), prices)
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter().map(|(_, c, p)| (c, p)).collect()
}

/// A price for people: "15", "12.50".
fn amount(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.2}")
    }
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

    /// The price steps of the chosen currency.
    fn steps<'a>(&self, prices: &'a [(String, Vec<f64>)]) -> &'a [f64] {
        prices
            .iter()
            .find(|(c, _)| Some(c) == self.currency.as_ref())
            .map_or(&[], |(_, p)| p.as_slice())
    }

    /// The next (or previous) currency; the price filter starts again from off in it.
    fn step_currency(&mut self, prices: &[(String, Vec<f64>)], up: bool) {
        if prices.is_empty() {
            return;
        }
        let at = prices
            .iter()
            .position(|(c, _)| Some(c) == self.currency.as_ref());
        let n = prices.len();
        let next = match (at, up) {
            (Some(i), true) => (i + 1) % n,
            (Some(i), false) => (i + n - 1) % n,
            (None, _) => 0,
        };
        self.currency = Some(prices[next].0.clone());
        self.max_price = None;
    }

    /// Turn an item on or off; value items step up from off (and wrap back to off).
    pub(crate) fn toggle(&mut self, item: Item, prices: &[(String, Vec<f64>)]) {
        match item {
            Item::OpenNow => self.open_now = !self.open_now,
            Item::SeatsFree => self.seats_free = !self.seats_free,
            Item::Visa => self.visa = !self.visa,
            Item::VerifiedOnly => self.verified_only = !self.verified_only,
            Item::Currency => self.step_currency(prices, true),
            Item::MaxPrice => self.max_price = step(self.max_price, self.steps(prices).len(), true),
            Item::MinWifi => self.min_wifi = step(self.min_wifi, WIFI_STEPS.len(), true),
            Item::Access(a) => flip(&mut self.access, a),
            Item::Amenity(a) => flip(&mut self.amenities, a),
        }
    }

    /// Step a value item down (left arrow); other items just toggle.
    pub(crate) fn step_back(&mut self, item: Item, prices: &[(String, Vec<f64>)]) {
        match item {
            Item::Currency => self.step_currency(prices, false),
            Item::MaxPrice => {
                self.max_price = step(self.max_price, self.steps(prices).len(), false)
            }
            Item::MinWifi => self.min_wifi = step(self.min_wifi, WIFI_STEPS.len(), false),
            other => self.toggle(other, prices),
        }
    }

    pub(crate) fn is_on(&self, item: Item) -> bool {
        match item {
            Item::OpenNow => self.open_now,
            Item::SeatsFree => self.seats_free,
            Item::Visa => self.visa,
            Item::VerifiedOnly => self.verified_only,
            Item::Currency => false,
            Item::MaxPrice => self.max_price.is_some(),
            Item::MinWifi => self.min_wifi.is_some(),
            Item::Access(a) => self.access.contains(&a),
            Item::Amenity(a) => self.amenities.contains(&a),
        }
    }

    /// The panel text of an item: "open now", "day pass ≤ 20 EUR", "wifi ≥ 100 Mbit/s", "wheelchair".
    pub(crate) fn item_text(&self, item: Item, prices: &[(String, Vec<f64>)]) -> String {
        let cur = self.currency.as_deref().unwrap_or("-");
        match item {
            Item::OpenNow => "open now".into(),
            Item::SeatsFree => "seats free now".into(),
            Item::Visa => "coworking visa".into(),
            Item::VerifiedOnly => "verified facts only".into(),
            Item::Currency => format!("prices in {cur}"),
            Item::MaxPrice => match self.max_price.and_then(|i| self.steps(prices).get(i)) {
                Some(p) if *p == 0.0 => format!("day pass: free ({cur})"),
                Some(p) => format!("day pass ≤ {} {cur}", amount(*p)),
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
    pub(crate) fn active(&self, prices: &[(String, Vec<f64>)]) -> Vec<String> {
        items()
            .into_iter()
            .filter(|i| self.is_on(*i))
            .map(|i| self.item_text(i, prices))
            .collect()
    }

    /// The directory query for these filters and the search text. The price filter is always in its
    /// currency, and the price sort puts that currency first.
    pub(crate) fn query(&self, search: &str, prices: &[(String, Vec<f64>)]) -> Query {
        let text = search.trim();
        Query {
            text: (!text.is_empty()).then(|| text.to_string()),
            amenities: self.amenities.clone(),
            access: self.access.clone(),
            open_now: self.open_now,
            seats_free_now: self.seats_free,
            max_day_pass_price: self
                .max_price
                .and_then(|i| self.steps(prices).get(i).copied()),
            currency: self.currency.clone(),
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

    fn prices() -> Vec<(String, Vec<f64>)> {
        vec![
            ("EUR".into(), vec![0.0, 10.0, 18.0, 25.0]),
            ("ARS".into(), vec![15000.0]),
        ]
    }

    #[test]
    fn value_items_cycle_through_off() {
        let p = prices();
        let mut f = Filters {
            currency: Some("EUR".into()),
            ..Filters::default()
        };
        let mut seen = Vec::new();
        for _ in 0..=4 {
            f.toggle(Item::MaxPrice, &p);
            seen.push(f.max_price);
        }
        assert_eq!(seen.first(), Some(&Some(0)));
        assert_eq!(seen.last(), Some(&None));
        f.step_back(Item::MaxPrice, &p);
        assert_eq!(f.max_price, Some(3));
        assert_eq!(f.item_text(Item::MaxPrice, &p), "day pass ≤ 25 EUR");
        let q = f.query("", &p);
        assert_eq!(
            (q.max_day_pass_price, q.currency.as_deref()),
            (Some(25.0), Some("EUR"))
        );
        // Another currency has its own steps, and starts from off: 15 never means 15 pesos.
        f.toggle(Item::Currency, &p);
        assert_eq!((f.currency.as_deref(), f.max_price), (Some("ARS"), None));
        f.toggle(Item::MaxPrice, &p);
        assert_eq!(f.item_text(Item::MaxPrice, &p), "day pass ≤ 15000 ARS");
    }

    #[test]
    fn query_carries_every_filter() {
        let mut f = Filters::default();
        let p = prices();
        f.toggle(Item::OpenNow, &p);
        f.toggle(Item::MinWifi, &p);
        f.toggle(Item::MinWifi, &p);
        f.toggle(Item::Access(AccessNeed::HearingLoop), &p);
        f.toggle(Item::Amenity(Amenity::Coffee), &p);
        let q = f.query("  berlin ", &p);
        assert_eq!(q.text.as_deref(), Some("berlin"));
        assert!(q.open_now);
        assert_eq!(q.min_wifi_down_mbps, Some(50.0));
        assert_eq!(q.access, vec![AccessNeed::HearingLoop]);
        assert_eq!(q.amenities, vec![Amenity::Coffee]);
        assert_eq!(
            f.active(&p),
            vec!["open now", "wifi ≥ 50 Mbit/s", "hearing loop", "coffee"]
        );
        f.toggle(Item::Amenity(Amenity::Coffee), &p);
        assert!(f.query("", &p).amenities.is_empty());
        f.toggle(Item::VerifiedOnly, &p);
        assert!(f.query("", &p).verified_only);
        assert_eq!(f.query(" ", &p).text, None);
    }
}
