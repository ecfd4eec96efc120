//! Keyed pseudonyms: UIDs, patient IDs and the per-patient date shift all come from HMAC-SHA-256 under one secret,
//! so the same input gives the same output across files and runs, and nobody without the secret can map back (a
//! plain hash of a low-entropy ID could be reversed by trying every ID).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The environment variable holding the secret. It is read, never written anywhere.
pub const SECRET_ENV: &str = "MEDGRAIN_DEID_SECRET";

/// Shortest secret accepted (bytes).
pub const MIN_SECRET_LEN: usize = 16;

#[derive(Clone)]
pub struct Keys {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<secret>)")
    }
}

impl Keys {
    pub fn new(secret: &[u8]) -> Result<Keys, crate::DeidError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(crate::DeidError::Secret(format!(
                "{SECRET_ENV} must hold at least {MIN_SECRET_LEN} bytes (it has {})",
                secret.len()
            )));
        }
        Ok(Keys {
            secret: secret.to_vec(),
        })
    }

    /// From [`SECRET_ENV`]; the error names the variable.
    pub fn from_env() -> Result<Keys, crate::DeidError> {
        match std::env::var_os(SECRET_ENV) {
            Some(v) if !v.is_empty() => Keys::new(v.as_encoded_bytes()),
            _ => Err(crate::DeidError::Secret(format!(
                "{SECRET_ENV} is not set: de-identification replaces UIDs and patient IDs by keyed pseudonyms and \
                 needs a secret (at least {MIN_SECRET_LEN} bytes; keep it to get the same pseudonyms on later runs)"
            ))),
        }
    }

    fn mac(&self, domain: &str, value: &str) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        m.update(domain.as_bytes());
        m.update(&[0]);
        m.update(value.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// A UID in the `2.25.` form (PS3.5 B.2: the decimal of a 128-bit integer), keyed on the input UID.
    pub fn uid(&self, original: &str) -> String {
        let original = original.trim_end_matches(['\0', ' ']);
        let h = self.mac("uid", original);
        let mut b = [0u8; 16];
        b.copy_from_slice(&h[..16]);
        // a version-4-style UUID layout, as 2.25 UIDs made from UUIDs have
        b[6] = (b[6] & 0x0F) | 0x40;
        b[8] = (b[8] & 0x3F) | 0x80;
        format!("2.25.{}", u128::from_be_bytes(b))
    }

    /// A patient pseudonym: `MG` and 20 hex digits, keyed on the original PatientID.
    pub fn patient_id(&self, original: &str) -> String {
        let h = self.mac("patient-id", original.trim_end_matches(['\0', ' ']).trim());
        let hex: String = h[..10].iter().map(|b| format!("{b:02X}")).collect();
        format!("MG{hex}")
    }

    /// The per-patient date shift in days: between 365 and 3,650 days into the past.
    pub fn date_shift_days(&self, patient: &str) -> i64 {
        let h = self.mac("date-shift", patient.trim_end_matches(['\0', ' ']).trim());
        let v = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        -(365 + (v % 3286) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_keyed_stable_and_valid() {
        let k = Keys::new(b"0123456789abcdef-secret").unwrap();
        let u = k.uid("1.2.840.113619.2.55.3.604688119.969.1268071029.320");
        assert_eq!(
            u,
            k.uid("1.2.840.113619.2.55.3.604688119.969.1268071029.320\0"),
            "padding ignored"
        );
        assert_ne!(u, k.uid("1.2.840.113619.2.55.3.604688119.969.1268071029.321"));
        let other = Keys::new(b"another secret of 16+ bytes").unwrap();
        assert_ne!(u, other.uid("1.2.840.113619.2.55.3.604688119.969.1268071029.320"));
        // PS3.5 9.1: components of digits without leading zeros, at most 64 characters
        assert!(u.len() <= 64 && u.starts_with("2.25."), "{u}");
        let n = &u[5..];
        assert!(n.chars().all(|c| c.is_ascii_digit()) && !n.starts_with('0'));
        assert!(n.parse::<u128>().is_ok());
    }

    #[test]
    fn a_short_or_missing_secret_is_refused() {
        assert!(Keys::new(b"short").is_err());
        let e = Keys::new(b"").unwrap_err().to_string();
        assert!(e.contains(SECRET_ENV), "{e}");
    }

    #[test]
    fn date_shifts_stay_in_range() {
        let k = Keys::new(b"0123456789abcdef-secret").unwrap();
        for p in ["A", "B", "123456", ""] {
            let d = k.date_shift_days(p);
            assert!((-3650..=-365).contains(&d), "{d}");
        }
        assert_eq!(k.date_shift_days("123456"), k.date_shift_days("123456 "));
    }
}
