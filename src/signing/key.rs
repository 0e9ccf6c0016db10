//! Signing and verifying keys: ECDSA P-256, in cosign's encrypted key format or PEM.
//!
//! cosign's private key file is PEM (`ENCRYPTED SIGSTORE PRIVATE KEY`, formerly
//! `ENCRYPTED COSIGN PRIVATE KEY`) around JSON: a scrypt KDF and a NaCl secretbox holding
//! the PKCS#8 key. sigstore's Rust crate reads it too, but brings its whole OCI, TUF and
//! Rekor client with it; the format is a few JSON fields over RustCrypto's scrypt and
//! secretbox, which are what that crate uses underneath.

use base64::Engine;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};

/// Why a key could not be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: cannot read the key: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Format { path: String, reason: String },
    #[error("{path}: the key is encrypted and COSIGN_PASSWORD is not set")]
    NoPassword { path: String },
    #[error("{path}: wrong password (COSIGN_PASSWORD), or the key file is damaged")]
    Decrypt { path: String },
}

/// A private key that signs payloads (ECDSA P-256 with SHA-256, ASN.1 DER signatures, as
/// cosign writes them).
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(P-256)")
    }
}

const ENCRYPTED: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

impl Signer {
    /// Read the key file at `path`; `password` opens a cosign key.
    pub fn load(path: &std::path::Path, password: Option<&str>) -> Result<Signer, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Self::from_pem(&text, password, &shown)
    }

    /// A key from its PEM text: cosign's encrypted form, PKCS#8 (`PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`). `path` names it in errors.
    pub fn from_pem(text: &str, password: Option<&str>, path: &str) -> Result<Signer, KeyError> {
        let format = |reason: String| KeyError::Format {
            path: path.to_string(),
            reason,
        };
        let label = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
            .and_then(|l| l.strip_suffix("-----"))
            .ok_or_else(|| format("not a PEM key (no -----BEGIN line)".into()))?;
        let key = if ENCRYPTED.contains(&label) {
            let password = password.ok_or_else(|| KeyError::NoPassword {
                path: path.to_string(),
            })?;
            let der = decrypt(text, label, password, path)?;
            SigningKey::from_pkcs8_der(&der)
                .map_err(|e| format(format!("not an ECDSA P-256 key: {e}")))?
        } else if label == "PRIVATE KEY" {
            SigningKey::from_pkcs8_pem(text)
                .map_err(|e| format(format!("not an ECDSA P-256 PKCS#8 key: {e}")))?
        } else if label == "EC PRIVATE KEY" {
            let sk = p256::SecretKey::from_sec1_pem(text)
                .map_err(|e| format(format!("not an ECDSA P-256 key: {e}")))?;
            SigningKey::from(sk)
        } else {
            return Err(format(format!(
                "a PEM `{label}` is not a private key (expected cosign's key, PRIVATE KEY or EC PRIVATE KEY)"
            )));
        };
        Ok(Signer { key })
    }

    /// The ASN.1 DER signature of `payload`.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let sig: Signature = self.key.sign(payload);
        sig.to_der().as_bytes().to_vec()
    }

    pub fn verifier(&self) -> Verifier {
        Verifier {
            key: *self.key.verifying_key(),
        }
    }
}

/// cosign's encrypted key: base64 JSON between the PEM lines.
fn decrypt(text: &str, label: &str, password: &str, path: &str) -> Result<Vec<u8>, KeyError> {
    let format = |reason: String| KeyError::Format {
        path: path.to_string(),
        reason,
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let body: String = text
        .lines()
        .skip_while(|l| !l.contains(&format!("BEGIN {label}")))
        .skip(1)
        .take_while(|l| !l.contains("-----END"))
        .map(str::trim)
        .collect();
    let json = b64
        .decode(body)
        .map_err(|e| format(format!("the key is not base64: {e}")))?;
    #[derive(serde::Deserialize)]
    struct Kdf {
        name: String,
        params: Params,
        salt: String,
    }
    #[derive(serde::Deserialize)]
    #[allow(non_snake_case)]
    struct Params {
        N: u64,
        r: u32,
        p: u32,
    }
    #[derive(serde::Deserialize)]
    struct Cipher {
        name: String,
        nonce: String,
    }
    #[derive(serde::Deserialize)]
    struct Sealed {
        kdf: Kdf,
        cipher: Cipher,
        ciphertext: String,
    }
    let sealed: Sealed = serde_json::from_slice(&json)
        .map_err(|e| format(format!("not a cosign key (its JSON: {e})")))?;
    if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
        return Err(format(format!(
            "unknown key encryption {} / {} (cosign uses scrypt / nacl/secretbox)",
            sealed.kdf.name, sealed.cipher.name
        )));
    }
    let n = sealed.kdf.params.N;
    if !n.is_power_of_two() || n < 2 {
        return Err(format(format!("scrypt N={n} is not a power of two")));
    }
    let params = scrypt::Params::new(
        n.trailing_zeros() as u8,
        sealed.kdf.params.r,
        sealed.kdf.params.p,
        32,
    )
    .map_err(|e| format(format!("scrypt parameters: {e}")))?;
    let salt = b64
        .decode(&sealed.kdf.salt)
        .map_err(|e| format(format!("salt: {e}")))?;
    let mut secret = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut secret)
        .map_err(|e| format(format!("scrypt: {e}")))?;
    let nonce = b64
        .decode(&sealed.cipher.nonce)
        .map_err(|e| format(format!("nonce: {e}")))?;
    let ciphertext = b64
        .decode(&sealed.ciphertext)
        .map_err(|e| format(format!("ciphertext: {e}")))?;
    if nonce.len() != 24 {
        return Err(format(format!(
            "the nonce has {} bytes, not 24",
            nonce.len()
        )));
    }
    use crypto_secretbox::aead::{Aead, KeyInit};
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&secret.into());
    cipher
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            ciphertext.as_slice(),
        )
        .map_err(|_| KeyError::Decrypt {
            path: path.to_string(),
        })
}

/// A public key that checks signatures.
#[derive(Clone, Debug)]
pub struct Verifier {
    key: VerifyingKey,
}

impl Verifier {
    /// A PEM `PUBLIC KEY` (cosign.pub), read from `path`.
    pub fn load(path: &std::path::Path) -> Result<Verifier, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let key = VerifyingKey::from_public_key_pem(&text).map_err(|e| KeyError::Format {
            path: shown,
            reason: format!("not an ECDSA P-256 public key: {e}"),
        })?;
        Ok(Verifier { key })
    }

    /// Whether `signature` (ASN.1 DER) is this key's over `payload`.
    pub fn verify(&self, payload: &[u8], signature: &[u8]) -> bool {
        Signature::from_der(signature).is_ok_and(|s| self.key.verify(payload, &s).is_ok())
    }

    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    #[test]
    fn a_pem_key_signs_what_its_public_key_verifies() {
        let sk = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
        let s = Signer::from_pem(&pem, None, "k.pem").unwrap();
        let sig = s.sign(b"payload");
        assert!(s.verifier().verify(b"payload", &sig));
        assert!(!s.verifier().verify(b"other", &sig));
        let sec1 = p256::SecretKey::from(sk)
            .to_sec1_pem(LineEnding::LF)
            .unwrap();
        let s2 = Signer::from_pem(&sec1, None, "k.pem").unwrap();
        assert!(s.verifier().verify(b"x", &s2.sign(b"x")));
    }

    #[test]
    fn bad_keys_name_the_file() {
        let e = Signer::from_pem("not a key", None, "/k/cosign.key").unwrap_err();
        assert!(
            e.to_string().starts_with("/k/cosign.key: not a PEM key"),
            "{e}"
        );
        let enc = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJ9\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
        let e = Signer::from_pem(enc, None, "/k/cosign.key").unwrap_err();
        assert!(e.to_string().contains("COSIGN_PASSWORD is not set"), "{e}");
        let e = Signer::from_pem(
            "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n",
            None,
            "p",
        )
        .unwrap_err();
        assert!(e.to_string().contains("is not a private key"), "{e}");
    }
}
