//! `down --rmi local|all`: remove the project's images after its containers,
//! as docker compose does. `local` takes only the images compose named
//! itself (`<project>-<service>`, services with `build:` and no `image:`);
//! `all` takes every service's image. An image another container still
//! uses is kept, with a warning.

use mc_engine::Reporter;
use mc_image::Store;

use super::compose::Rmi;
use crate::global::Global;

/// The references `down --rmi` removes, in service order, without repeats.
pub fn images_to_remove(project: &mc_compose::Project, rmi: Rmi) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, s) in &project.services {
        let built_here = s.build.is_some() && s.image.is_none();
        if rmi == Rmi::Local && !built_here {
            continue;
        }
        let image = super::build::service_image(&project.name, name, s);
        if !out.contains(&image) {
            out.push(image);
        }
    }
    out
}

/// Untag each image, then delete the blobs and layers nothing uses any more.
pub fn remove(
    g: &Global,
    project: &mc_compose::Project,
    rmi: Rmi,
    rep: &mut dyn Reporter,
) -> anyhow::Result<()> {
    let store = Store::open(&g.root)?;
    let (layers_in_use, users) = super::image::layers_in_use(g);
    let mut removed_any = false;
    for image in images_to_remove(project, rmi) {
        let Some(rec) = store.find(&image)? else {
            continue;
        };
        if let Some((_, c)) = users.iter().find(|(id, _)| *id == rec.id) {
            rep.warn(&format!(
                "image {image} is still used by container {c}: left in place"
            ));
            continue;
        }
        rep.status("Image", &image, "Removing");
        store.untag(|r| r.reference == rec.reference)?;
        removed_any = true;
        rep.status("Image", &image, "Removed");
    }
    if removed_any {
        store.collect_garbage(&layers_in_use)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> mc_compose::Project {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("compose.yaml");
        std::fs::write(&f, yaml).unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let opts = mc_compose::LoadOptions {
            files: vec![f],
            project_name: Some("demo".into()),
            ..Default::default()
        };
        mc_compose::load(&opts).unwrap()
    }

    #[test]
    fn local_takes_only_images_compose_named() {
        let p = project(
            "services:\n  web:\n    build: .\n  tagged:\n    build: .\n    image: me/tagged:1\n  redis:\n    image: redis:alpine\n",
        );
        assert_eq!(images_to_remove(&p, Rmi::Local), vec!["demo-web"]);
        let mut all = images_to_remove(&p, Rmi::All);
        all.sort();
        assert_eq!(all, vec!["demo-web", "me/tagged:1", "redis:alpine"]);
    }
}
