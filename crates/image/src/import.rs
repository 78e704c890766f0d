//! `image import TARBALL REF`: a root filesystem tarball (plain, gzip or
//! zstd) becomes a one-layer image, as `docker import` does.

use std::io::Read;

use crate::manifest::{self, Platform};
use crate::pull::{store_blob_from_reader, unpack_stored_blob};
use crate::store::TagRecord;
use crate::unpack::{sniff, Compression};
use crate::{Error, Reference, Store};

/// Import `input` as `reference`; returns the new tag record.
pub fn import(
    store: &Store,
    input: impl Read,
    reference: &Reference,
    source: &str,
) -> Result<TagRecord, Error> {
    if reference.digest.is_some() {
        return Err(Error::Invalid(format!(
            "import {reference}: give a tag, not a digest (the digest is computed)"
        )));
    }
    let (blob, size) = store_blob_from_reader(store, input)
        .map_err(|e| Error::Other(e.context(format!("import {source}: read the tarball"))))?;
    let head = {
        let mut f = std::fs::File::open(store.blob_path(&blob)).map_err(anyhow::Error::from)?;
        let mut h = [0u8; 4];
        let n = f.read(&mut h).map_err(anyhow::Error::from)?;
        h[..n].to_vec()
    };
    let media_type = match sniff(&head) {
        Compression::Gzip => manifest::OCI_LAYER_GZIP,
        Compression::Zstd => manifest::OCI_LAYER_ZSTD,
        Compression::None => manifest::OCI_LAYER,
    };
    let unpacked = unpack_stored_blob(store, &blob).map_err(|e| {
        let _ = std::fs::remove_file(store.blob_path(&blob));
        if e.chain().any(|c| c.is::<crate::unpack::Refused>()) {
            Error::Invalid(format!("import {source}: {}", crate::one_line(&e)))
        } else {
            Error::Invalid(format!(
                "import {source}: not a valid tar archive: {}",
                crate::one_line(&e)
            ))
        }
    })?;
    let host = Platform::host();
    let now = rfc3339_now();
    let mut config = serde_json::json!({
        "architecture": host.architecture,
        "os": host.os,
        "created": now,
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [unpacked.diff_id] },
        "history": [{ "created": now, "created_by": "minicompose image import", "comment": format!("Imported from {source}") }],
    });
    if let Some(v) = host.variant {
        config["variant"] = v.into();
    }
    let config_raw = serde_json::to_vec(&config).map_err(anyhow::Error::from)?;
    let config_digest = store.write_blob(&config_raw)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": { "mediaType": manifest::OCI_CONFIG, "digest": config_digest, "size": config_raw.len() },
        "layers": [{ "mediaType": media_type, "digest": blob, "size": size }],
    });
    let manifest_raw = serde_json::to_vec(&manifest).map_err(anyhow::Error::from)?;
    let manifest_digest = store.write_blob(&manifest_raw)?;
    let rec = TagRecord {
        reference: reference.to_string(),
        manifest_digest,
        manifest_media_type: manifest::OCI_MANIFEST.to_string(),
        manifest_size: manifest_raw.len() as u64,
        repo_digest: None,
        id: config_digest,
        created: Some(now),
        size,
        layout_manifest: None,
    };
    store.tag(rec.clone())?;
    Ok(rec)
}

/// Now as `2024-01-02T03:04:05Z` (UTC).
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

pub fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Seconds since the epoch of an RFC 3339 time (fractions and offsets allowed).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        r if r.len() == 6 => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            sign * (r.get(1..3)?.parse::<i64>().ok()? * 3600
                + r.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z")
                .map(rfc3339)
                .as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
        assert_eq!(parse_rfc3339("nope"), None);
    }

    #[test]
    fn imports_a_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "etc/hi", &b"hi\n"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let r = Reference::parse("local/imported:v1").unwrap();
        let rec = import(&store, &tar[..], &r, "test.tar").unwrap();
        let img = store.get("local/imported:v1").unwrap().unwrap();
        assert_eq!(img.id, rec.id);
        assert_eq!(
            std::fs::read(img.layers[0].join("etc/hi")).unwrap(),
            b"hi\n"
        );
        assert!(import(
            &store,
            &b"not a tar at all, just text that is long enough"[..],
            &r,
            "x"
        )
        .is_err());
    }
}
