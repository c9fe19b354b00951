//! The office's SM2 signing key (GB/T 32918, RustCrypto's `sm2`): made once
//! in the data directory, the private half never leaving it
//! (`DIR/keys/signing.key`, SEC1 PEM, mode 0600), the public half written
//! beside it for publication (`DIR/keys/signing.pub`, SubjectPublicKeyInfo
//! PEM). Signed tree heads and certificates are signed with it; anyone
//! holding the public key checks them without the ledger.
//!
//! Signatures are SM2DSA with the default distinguishing ID of GB/T 35276
//! (`1234567812345678`): the crate asks for one, and the default is what
//! other SM2 tools (GmSSL, OpenSSL) assume when none is given.

use crate::error::{Classified, Kind};
use ledger::envelope::sm3;
use sm2::dsa::signature::{Signer, Verifier};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::elliptic_curve::Generate;
use sm2::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use sm2::{PublicKey, SecretKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The distinguishing ID every signature is made and checked with.
pub const DISTINGUISHING_ID: &str = "1234567812345678";
/// Largest key file read.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The signing key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// `keys init` never replaces a key: certificates and heads signed with
    /// it would no longer verify against the published public key.
    #[error("{} exists: a signing key is made once and never overwritten", .path.display())]
    Exists { path: PathBuf },
    #[error("no signing key at {} (make one with `yibao keys init`)", .path.display())]
    Missing { path: PathBuf },
    /// A key file that is not a key: the file and why.
    #[error("{}: not an SM2 {what} key: {reason}", .path.display())]
    Unreadable { path: PathBuf, what: &'static str, reason: String },
    #[error("{}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random numbers failed.
    #[error("no random numbers for a key: {0}")]
    Random(String),
    /// A key did not encode as PEM (a bug in the encoder, never input).
    #[error("encoding the key: {0}")]
    Encoding(String),
}

impl Classified for KeyError {
    fn kind(&self) -> Kind {
        match self {
            KeyError::Exists { .. } | KeyError::Missing { .. } | KeyError::Unreadable { .. } => Kind::BadInput,
            KeyError::Io { .. } | KeyError::Random(_) | KeyError::Encoding(_) => Kind::Failure,
        }
    }
}

/// The office's key pair, read from the data directory.
pub struct OfficeKey {
    key: SigningKey,
}

/// A public key with its short id, as published.
#[derive(Clone, Debug)]
pub struct PublicKeyInfo {
    pub key: VerifyingKey,
    /// The first 8 bytes of SM3 of the uncompressed SEC1 point, hex.
    pub key_id: String,
    /// SubjectPublicKeyInfo, PEM.
    pub pem: String,
}

/// Where the key pair lives in the data directory.
pub fn private_key_path(data: &Path) -> PathBuf {
    data.join("keys").join("signing.key")
}

pub fn public_key_path(data: &Path) -> PathBuf {
    data.join("keys").join("signing.pub")
}

/// Makes the key pair: the private key (mode 0600, never overwritten) and
/// the public key file. Answers the public key.
pub fn init(data: &Path) -> Result<PublicKeyInfo, KeyError> {
    let private_path = private_key_path(data);
    if private_path.exists() {
        return Err(KeyError::Exists { path: private_path });
    }
    let keys_dir = data.join("keys");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    std::fs::create_dir_all(&keys_dir).map_err(io(&keys_dir))?;
    let secret = SecretKey::try_generate().map_err(|e| KeyError::Random(e.to_string()))?;
    let pem = secret.to_sec1_pem(LineEnding::LF).map_err(|e| KeyError::Encoding(e.to_string()))?;
    write_new(&private_path, pem.as_bytes(), 0o600)?;
    let public = signing_key(&secret, &private_path)?.public()?;
    std::fs::write(public_key_path(data), &public.pem).map_err(io(&public_key_path(data)))?;
    Ok(public)
}

/// Creates `path` with `mode`, refusing an existing file (another
/// `keys init` racing this one loses, and nothing is overwritten).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists { path: path.to_path_buf() },
        _ => KeyError::Io { path: path.to_path_buf(), source },
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Io { path: path.to_path_buf(), source })
}

fn signing_key(secret: &SecretKey, path: &Path) -> Result<OfficeKey, KeyError> {
    let key = SigningKey::new(DISTINGUISHING_ID, secret).map_err(|e| KeyError::Unreadable {
        path: path.to_path_buf(),
        what: "private",
        reason: e.to_string(),
    })?;
    Ok(OfficeKey { key })
}

/// The data directory's signing key, `None` when it has none.
pub fn load(data: &Path) -> Result<Option<OfficeKey>, KeyError> {
    let path = private_key_path(data);
    if !path.exists() {
        return Ok(None);
    }
    let text = read_small(&path)?;
    let secret = SecretKey::from_pem(&text).map_err(|e| KeyError::Unreadable {
        path: path.clone(),
        what: "private",
        reason: e.to_string(),
    })?;
    signing_key(&secret, &path).map(Some)
}

/// The data directory's signing key, an error naming its place when missing.
pub fn require(data: &Path) -> Result<OfficeKey, KeyError> {
    load(data)?.ok_or_else(|| KeyError::Missing { path: private_key_path(data) })
}

/// A public key file (SubjectPublicKeyInfo PEM; text around the PEM block
/// is ignored).
pub fn read_public(path: &Path) -> Result<PublicKeyInfo, KeyError> {
    let text = read_small(path)?;
    let unreadable = |reason: String| KeyError::Unreadable { path: path.to_path_buf(), what: "public", reason };
    let begin = text.find("-----BEGIN PUBLIC KEY-----").ok_or_else(|| unreadable("no PUBLIC KEY PEM block".into()))?;
    let end_marker = "-----END PUBLIC KEY-----";
    let end = text[begin..].find(end_marker).ok_or_else(|| unreadable("the PEM block does not end".into()))?;
    let pem = &text[begin..begin + end + end_marker.len()];
    let public = PublicKey::from_public_key_pem(pem).map_err(|e| unreadable(e.to_string()))?;
    let key = VerifyingKey::new(DISTINGUISHING_ID, public).map_err(|e| unreadable(e.to_string()))?;
    public_info(&key).map_err(|_| unreadable("does not encode again".into()))
}

fn read_small(path: &Path) -> Result<String, KeyError> {
    let io = |source| KeyError::Io { path: path.to_path_buf(), source };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_KEY_FILE_BYTES {
        return Err(KeyError::Unreadable {
            path: path.to_path_buf(),
            what: "key",
            reason: format!("{size} bytes, larger than any key file"),
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

fn public_info(key: &VerifyingKey) -> Result<PublicKeyInfo, KeyError> {
    let pem = PublicKey::from(key)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encoding(format!("the public key: {e}")))?;
    Ok(PublicKeyInfo { key: key.clone(), key_id: key_id(key), pem })
}

/// The first 8 bytes of SM3 of the uncompressed SEC1 point, hex: what a
/// signed head names its key by.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&sm3(&key.to_sec1_bytes())[..8])
}

impl OfficeKey {
    /// SM2DSA over `message`: r ‖ s, 64 bytes, hex.
    pub fn sign(&self, message: &[u8]) -> String {
        let signature: Signature = self.key.sign(message);
        hex::encode(signature.to_bytes())
    }

    pub fn public(&self) -> Result<PublicKeyInfo, KeyError> {
        public_info(self.key.verifying_key())
    }

    pub fn key_id(&self) -> String {
        key_id(self.key.verifying_key())
    }
}

impl PublicKeyInfo {
    /// Whether `signature_hex` (r ‖ s, hex) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature_hex: &str) -> bool {
        let Ok(bytes) = hex::decode(signature_hex) else { return false };
        let Ok(signature) = Signature::try_from(bytes.as_slice()) else { return false };
        self.key.verify(message, &signature).is_ok()
    }
}
