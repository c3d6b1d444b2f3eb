//! PEM or DER input, as operators hand it over (files from openssl, from a token, from a form).

/// Input that is neither DER nor PEM of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("malformed PEM: {0}")]
    Pem(String),
    #[error("the PEM input holds no {expected} block (found: {found})")]
    NoBlock { expected: String, found: String },
    #[error("the input is empty")]
    Empty,
}

/// Returns the DER of the first PEM block labelled `label` (e.g. `CERTIFICATE`), or the input
/// itself when it is not PEM (DER starts with a SEQUENCE tag, PEM with text).
pub fn decode_pem_or_der(input: &[u8], label: &str) -> Result<Vec<u8>, DecodeError> {
    let trimmed = input.trim_ascii_start();
    if trimmed.is_empty() {
        return Err(DecodeError::Empty);
    }
    if !trimmed.starts_with(b"-----BEGIN") {
        return Ok(input.to_vec());
    }
    let blocks = pem::parse_many(trimmed).map_err(|e| DecodeError::Pem(e.to_string()))?;
    let found: Vec<&str> = blocks.iter().map(|b| b.tag()).collect();
    let found = if found.is_empty() {
        "nothing".to_owned()
    } else {
        found.join(", ")
    };
    blocks
        .into_iter()
        .find(|b| b.tag() == label)
        .map(pem::Pem::into_contents)
        .ok_or(DecodeError::NoBlock {
            expected: label.to_owned(),
            found,
        })
}

/// PEM text for DER, with the given label, LF line endings.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_and_der_decode_to_the_same_bytes() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        let pem = to_pem("CERTIFICATE", &der);
        assert_eq!(
            decode_pem_or_der(pem.as_bytes(), "CERTIFICATE").unwrap(),
            der
        );
        assert_eq!(decode_pem_or_der(&der, "CERTIFICATE").unwrap(), der);
    }

    #[test]
    fn a_pem_of_another_kind_names_what_it_found() {
        let pem = to_pem("CERTIFICATE REQUEST", &[0x30, 0x00]);
        let err = decode_pem_or_der(pem.as_bytes(), "CERTIFICATE").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the PEM input holds no CERTIFICATE block (found: CERTIFICATE REQUEST)"
        );
        assert_eq!(decode_pem_or_der(b"  \n", "X"), Err(DecodeError::Empty));
    }
}
