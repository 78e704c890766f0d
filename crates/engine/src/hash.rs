//! The config hash of a service: what `up` compares to decide whether a
//! running container still matches its service (label `config-hash`).
//! Like compose, scale/replicas, depends_on, profiles, build and pull_policy
//! do not count: changing them does not recreate containers.

use sha2::{Digest, Sha256};

/// sha256 (hex) of the service's canonical JSON without the fields above.
pub fn service_hash(service: &mc_compose::Service) -> String {
    let mut s = service.clone();
    s.scale = None;
    if let Some(d) = s.deploy.as_mut() {
        d.replicas = None;
    }
    s.depends_on.clear();
    s.profiles.clear();
    s.build = None;
    s.pull_policy = None;
    let json = serde_json::to_vec(&s).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_sensitive() {
        let mut a = mc_compose::Service {
            image: Some("redis:alpine".into()),
            ..Default::default()
        };
        let h1 = service_hash(&a);
        assert_eq!(h1, service_hash(&a.clone()));
        assert_eq!(h1.len(), 64);
        a.scale = Some(3);
        assert_eq!(h1, service_hash(&a), "scale does not recreate");
        a.environment.insert("A".into(), Some("1".into()));
        assert_ne!(h1, service_hash(&a), "environment does");
    }
}
