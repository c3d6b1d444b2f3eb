//! Password hashing: Argon2id in PHC strings, off the async workers, a bounded number at once
//! (each takes about 19 MiB and tens of milliseconds), and one verification per login attempt
//! whatever happens, so that an unknown user costs what a wrong password costs.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio::sync::{OnceCell, Semaphore};
use zeroize::Zeroizing;

/// Argon2id cost. The floors are DESIGN.md's (OWASP's minimum for Argon2id): m ≥ 19456 KiB,
/// t ≥ 2, p = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    memory_kib: u32,
    iterations: u32,
}

/// Parameters below the floor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Argon2id needs at least {} KiB of memory and {} iterations (given {memory_kib} KiB, {iterations})",
    HashParams::MIN_MEMORY_KIB,
    HashParams::MIN_ITERATIONS
)]
pub struct WeakHashParams {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            memory_kib: Self::MIN_MEMORY_KIB,
            iterations: Self::MIN_ITERATIONS,
        }
    }
}

impl HashParams {
    pub const MIN_MEMORY_KIB: u32 = 19_456;
    pub const MIN_ITERATIONS: u32 = 2;

    /// Parameters at or above the floor; the only way a configuration file sets them.
    pub fn new(memory_kib: u32, iterations: u32) -> Result<HashParams, WeakHashParams> {
        if memory_kib < Self::MIN_MEMORY_KIB || iterations < Self::MIN_ITERATIONS {
            return Err(WeakHashParams {
                memory_kib,
                iterations,
            });
        }
        Ok(HashParams {
            memory_kib,
            iterations,
        })
    }

    /// Parameters below the floor, for tests that are not about hashing (a debug build takes
    /// 50–100 ms per hash at the real cost). Nothing in the configuration file reaches this.
    pub fn insecure_for_tests(memory_kib: u32, iterations: u32) -> HashParams {
        HashParams {
            memory_kib: memory_kib.max(8),
            iterations: iterations.max(1),
        }
    }

    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    fn argon2(&self) -> Result<Argon2<'static>, argon2::Error> {
        let params = Params::new(self.memory_kib, self.iterations, 1, None)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashing failed (never a wrong password: that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes and verifies passwords on the blocking pool, at most `permits` at a time.
#[derive(Debug, Clone)]
pub struct Hasher {
    params: HashParams,
    permits: Arc<Semaphore>,
    /// A hash of a random password at the current cost, verified against when the account
    /// has no hash (or does not exist), so every attempt costs one verification.
    dummy: Arc<OnceCell<String>>,
}

impl Hasher {
    pub fn new(params: HashParams) -> Hasher {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Hasher {
            params,
            permits: Arc::new(Semaphore::new(cpus.max(2))),
            dummy: Arc::new(OnceCell::new()),
        }
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    /// A PHC string of the (NFKC-normalised) password at the current cost.
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let normalized = Zeroizing::new(ukey_proto::password::normalize(password.expose_secret()));
        let params = self.params;
        self.blocking(move || {
            let salt = {
                use rand::RngCore;
                let mut bytes = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                SaltString::encode_b64(&bytes).map_err(|e| HashError(e.to_string()))?
            };
            let argon2 = params.argon2().map_err(|e| HashError(e.to_string()))?;
            argon2
                .hash_password(normalized.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await
    }

    /// Whether `password` matches `phc`; with `None`, verifies against a dummy hash (same
    /// cost) and answers false.
    pub async fn verify(
        &self,
        password: &SecretString,
        phc: Option<&str>,
    ) -> Result<bool, HashError> {
        let (phc, real) = match phc {
            Some(p) => (p.to_owned(), true),
            None => (self.dummy().await?, false),
        };
        let normalized = Zeroizing::new(ukey_proto::password::normalize(password.expose_secret()));
        let ok = self
            .blocking(move || {
                let parsed = PasswordHash::new(&phc).map_err(|e| HashError(e.to_string()))?;
                // The parameters come from the stored string, so old hashes keep verifying.
                Ok(Argon2::default()
                    .verify_password(normalized.as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(ok && real)
    }

    /// Whether a stored hash was made with weaker parameters (or another algorithm) than the
    /// current ones, so that it is replaced at the next successful login.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        if parsed.algorithm != Algorithm::Argon2id.ident() {
            return true;
        }
        let Ok(params) = Params::try_from(&parsed) else {
            return true;
        };
        params.m_cost() < self.params.memory_kib
            || params.t_cost() < self.params.iterations
            || params.p_cost() != 1
    }

    async fn dummy(&self) -> Result<String, HashError> {
        self.dummy
            .get_or_try_init(|| async {
                use rand::RngCore;
                let mut random = Zeroizing::new([0u8; 24]);
                rand::rngs::OsRng.fill_bytes(random.as_mut_slice());
                self.hash(&SecretString::from(hex::encode(random.as_slice())))
                    .await
            })
            .await
            .cloned()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| HashError(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_below_the_floor_are_refused() {
        assert!(HashParams::new(19_455, 2).is_err());
        assert!(HashParams::new(19_456, 1).is_err());
        assert_eq!(HashParams::new(19_456, 2).unwrap(), HashParams::default());
    }

    /// The one hash at the real cost in the unit tests.
    #[tokio::test]
    async fn a_password_hashes_to_an_argon2id_phc_string_at_the_real_cost_and_verifies() {
        let hasher = Hasher::new(HashParams::default());
        let password = SecretString::from("Correct-Horse-7-Battery");
        let phc = hasher.hash(&password).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify(&password, Some(&phc)).await.unwrap());
        let wrong = SecretString::from("Correct-Horse-7-Battery!");
        assert!(!hasher.verify(&wrong, Some(&phc)).await.unwrap());
        assert!(!hasher.needs_rehash(&phc));
        // Full-width and half-width forms are one password (NFKC).
        let fullwidth = SecretString::from("Ｃｏｒｒｅｃｔ-Horse-7-Battery");
        assert!(hasher.verify(&fullwidth, Some(&phc)).await.unwrap());
    }

    #[tokio::test]
    async fn a_hash_made_with_lower_parameters_asks_to_be_replaced() {
        let low = Hasher::new(HashParams::insecure_for_tests(64, 1));
        let phc = low.hash(&SecretString::from("x")).await.unwrap();
        assert!(!low.needs_rehash(&phc));
        let higher = Hasher::new(HashParams::insecure_for_tests(128, 2));
        assert!(higher.needs_rehash(&phc));
        assert!(
            higher
                .verify(&SecretString::from("x"), Some(&phc))
                .await
                .unwrap()
        );
        assert!(!higher.verify(&SecretString::from("x"), None).await.unwrap());
    }
}
