//! Where the member usually is: a point saved in `node.toml`, given as coordinates or as a city of the
//! directory (the middle of that city's spaces). Distances are measured from it when asked for.

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::home::SavedPlace;
use crate::node::Node;

/// A place as a member names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlaceSpec {
    Point {
        lat: f64,
        lon: f64,
    },
    /// A city of the directory, compared whole (case- and accent-insensitive).
    City(String),
}

impl Node {
    /// The point `spec` names; a city must be one the directory has spaces in.
    pub fn resolve_place(&self, spec: &PlaceSpec) -> anyhow::Result<SavedPlace> {
        match spec {
            PlaceSpec::Point { lat, lon } => {
                if !lat.is_finite() || !(-90.0..=90.0).contains(lat) {
                    bail!("latitude {lat} is out of range -90..90");
                }
                if !lon.is_finite() || !(-180.0..=180.0).contains(lon) {
                    bail!("longitude {lon} is out of range -180..180");
                }
                Ok(SavedPlace {
                    lat: *lat,
                    lon: *lon,
                    label: None,
                })
            }
            PlaceSpec::City(city) => {
                let (lat, lon) = self.city_point(city)?;
                Ok(SavedPlace {
                    lat,
                    lon,
                    label: Some(city.trim().to_string()),
                })
            }
        }
    }

    /// Saves (or with `None` forgets) this node's location in `node.toml`; answers with what is saved now.
    pub fn set_location(&mut self, spec: Option<&PlaceSpec>) -> anyhow::Result<Option<SavedPlace>> {
        let place = spec.map(|s| self.resolve_place(s)).transpose()?;
        let home = self
            .home
            .clone()
            .ok_or_else(|| anyhow!("this node has no home directory to save settings in"))?;
        let mut config = self.config.clone();
        config.location = place.clone();
        home.write_config(&config)?;
        self.config = config;
        Ok(place)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::{self, now};

    #[test]
    fn a_place_is_a_valid_point_or_a_city_with_spaces() {
        let mut coordinator = testkit::coordinator();
        let mut space = testkit::space(&mut coordinator, "Riverside");
        let id = space.my_space().unwrap();
        space
            .publish_listing(&testkit::listing(&id, "Riverside"), now())
            .unwrap();
        let p = space
            .resolve_place(&PlaceSpec::Point {
                lat: 38.7,
                lon: -9.1,
            })
            .unwrap();
        assert_eq!((p.lat, p.lon, p.label), (38.7, -9.1, None));
        let err = space
            .resolve_place(&PlaceSpec::Point {
                lat: 91.0,
                lon: 0.0,
            })
            .unwrap_err();
        assert!(err.to_string().contains("latitude 91"), "{err}");
        let city = testkit::listing(&id, "x").location.address.city;
        let p = space
            .resolve_place(&PlaceSpec::City(city.to_uppercase()))
            .unwrap();
        assert_eq!(p.label.as_deref(), Some(city.to_uppercase().as_str()));
        let err = space
            .resolve_place(&PlaceSpec::City("Atlantis".into()))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("no space in the directory is in \"Atlantis\""),
            "{err}"
        );
        // An in-memory node has nowhere to save it.
        assert!(space.set_location(None).is_err());
    }
}
