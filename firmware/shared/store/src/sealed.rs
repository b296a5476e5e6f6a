//! Secrets in an export, sealed with a passphrase: argon2id derives a 256-bit key from the
//! passphrase and a random salt, and AES-256-GCM encrypts and authenticates the state with
//! it. The unencrypted parts of the export (schema version, configuration) are bound to the
//! sealed part as associated data, so neither can be swapped without the passphrase.

use aes_gcm::aead::rand_core::RngCore as _;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Shortest passphrase accepted for sealing.
pub const MIN_PASSPHRASE_LEN: usize = 12;

const KDF: &str = "argon2id";
const CIPHER: &str = "aes-256-gcm";
/// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane (about 50 ms here).
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;
/// Bounds for parameters read from an export: a crafted file must not make the daemon
/// spend gigabytes or minutes on one import.
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ITERATIONS: u32 = 16;

/// The sealed part of an export, as it appears in the document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sealed {
    kdf: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SealError {
    #[error("the passphrase must be at least {MIN_PASSPHRASE_LEN} characters")]
    ShortPassphrase,
    #[error("the sealed secrets use {0}, which this build does not know")]
    Unsupported(String),
    #[error("the sealed secrets ask for key derivation parameters out of bounds")]
    Parameters,
    #[error("the sealed secrets are not valid base64 ({0})")]
    Encoding(&'static str),
    #[error("cannot open the sealed secrets: wrong passphrase, or the export was changed")]
    Open,
    #[error("sealing failed: {0}")]
    Seal(String),
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let params = Params::new(memory_kib, iterations, parallelism, Some(32))
        .map_err(|_| SealError::Parameters)?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut *key)
        .map_err(|e| SealError::Seal(e.to_string()))?;
    Ok(key)
}

pub(crate) fn seal(plain: &[u8], passphrase: &str, bound: &[u8]) -> Result<Sealed, SealError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_LEN {
        return Err(SealError::ShortPassphrase);
    }
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let key = derive(passphrase, &salt, MEMORY_KIB, ITERATIONS, PARALLELISM)?;
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&*key));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plain,
                aad: bound,
            },
        )
        .map_err(|e| SealError::Seal(e.to_string()))?;
    Ok(Sealed {
        kdf: KDF.into(),
        memory_kib: MEMORY_KIB,
        iterations: ITERATIONS,
        parallelism: PARALLELISM,
        salt: STANDARD.encode(salt),
        cipher: CIPHER.into(),
        nonce: STANDARD.encode(nonce),
        ciphertext: STANDARD.encode(ciphertext),
    })
}

pub(crate) fn open(
    sealed: &Sealed,
    passphrase: &str,
    bound: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.kdf != KDF {
        return Err(SealError::Unsupported(sealed.kdf.clone()));
    }
    if sealed.cipher != CIPHER {
        return Err(SealError::Unsupported(sealed.cipher.clone()));
    }
    if sealed.memory_kib > MAX_MEMORY_KIB
        || sealed.iterations > MAX_ITERATIONS
        || sealed.parallelism != PARALLELISM
    {
        return Err(SealError::Parameters);
    }
    let salt = STANDARD
        .decode(&sealed.salt)
        .map_err(|_| SealError::Encoding("salt"))?;
    let nonce = STANDARD
        .decode(&sealed.nonce)
        .map_err(|_| SealError::Encoding("nonce"))?;
    if nonce.len() != 12 {
        return Err(SealError::Encoding("nonce"));
    }
    let ciphertext = STANDARD
        .decode(&sealed.ciphertext)
        .map_err(|_| SealError::Encoding("ciphertext"))?;
    let key = derive(
        passphrase,
        &salt,
        sealed.memory_kib,
        sealed.iterations,
        sealed.parallelism,
    )?;
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&*key));
    cipher
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: bound,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "correct horse battery";

    #[test]
    fn sealed_secrets_open_with_the_passphrase_only() {
        let sealed = seal(b"the ring", PASS, b"config").unwrap();
        assert_eq!(&**open(&sealed, PASS, b"config").unwrap(), b"the ring");
        assert_eq!(
            open(&sealed, "correct horse battery!", b"config"),
            Err(SealError::Open)
        );
        assert!(!sealed.ciphertext.contains("the ring"));
    }

    #[test]
    fn the_bound_configuration_cannot_be_swapped() {
        let sealed = seal(b"the ring", PASS, b"config A").unwrap();
        assert_eq!(open(&sealed, PASS, b"config B"), Err(SealError::Open));
    }

    #[test]
    fn short_passphrases_and_costly_parameters_are_refused() {
        assert_eq!(
            seal(b"x", "short", b"").unwrap_err(),
            SealError::ShortPassphrase
        );
        let mut sealed = seal(b"x", PASS, b"").unwrap();
        sealed.memory_kib = 4 * 1024 * 1024;
        assert_eq!(open(&sealed, PASS, b""), Err(SealError::Parameters));
    }
}
