use std::collections::BTreeSet;

use super::*;
use crate::manifest::Expose;

fn config() -> DeployConfig {
    DeployConfig {
        name: "devfile-registry".into(),
        namespace: "devfiles".into(),
        headless: false,
        operator: false,
        storage: Some("1Gi".into()),
        expose: Some(Expose::Ingress {
            host: "registry.apps.internal".into(),
            class: Some("nginx".into()),
        }),
    }
}

fn pinned(name: &str) -> String {
    format!(
        "registry.internal:5000/devfiles/{name}:next@sha256:{}",
        "a".repeat(64)
    )
}

fn images() -> Images {
    Images {
        devfile_index: pinned("devfile-index"),
        oci_registry: pinned("oci-registry"),
        registry_viewer: Some(pinned("registry-viewer")),
        operator: None,
    }
}

#[test]
fn renders_the_same_bytes_and_only_pinned_in_gap_images() {
    let files = render(&config(), &images()).unwrap();
    assert_eq!(files, render(&config(), &images()).unwrap());
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "deploy/README.md",
            "deploy/clients/checluster-patch.yaml",
            "deploy/clients/cluster-devfile-registries-list.yaml",
            "deploy/configmap.yaml",
            "deploy/deployment.yaml",
            "deploy/ingress.yaml",
            "deploy/kustomization.yaml",
            "deploy/namespace.yaml",
            "deploy/pvc.yaml",
            "deploy/service.yaml",
        ]
    );
    let i = images();
    let landed: BTreeSet<String> = [i.devfile_index, i.oci_registry, i.registry_viewer.unwrap()]
        .into_iter()
        .collect();
    let hosts: BTreeSet<String> = ["registry.internal", "registry.apps.internal"]
        .map(String::from)
        .into();
    let (findings, named) = check(
        &files,
        &check::Expected {
            landed: &landed,
            hosts: &hosts,
        },
    );
    assert_eq!(findings, []);
    assert_eq!(named, landed);

    // An image not landed, and a host outside: both named.
    let mut bad = files.clone();
    let deployment = String::from_utf8(bad["deploy/deployment.yaml"].clone()).unwrap();
    bad.insert(
        "deploy/deployment.yaml".into(),
        deployment
            .replace(&pinned("oci-registry"), "quay.io/devfile/oci-registry:next")
            .into_bytes(),
    );
    let (findings, _) = check(
        &bad,
        &check::Expected {
            landed: &landed,
            hosts: &hosts,
        },
    );
    assert!(findings.contains(&Finding::NotPinned {
        file: "deploy/deployment.yaml".into(),
        image: "quay.io/devfile/oci-registry:next".into(),
    }));
    let mut outside = files.clone();
    outside.insert(
        "deploy/README.md".into(),
        b"see https://github.com/devfile".to_vec(),
    );
    let (findings, _) = check(
        &outside,
        &check::Expected {
            landed: &landed,
            hosts: &hosts,
        },
    );
    assert_eq!(
        findings,
        [Finding::OutsideHost {
            file: "deploy/README.md".into(),
            host: "github.com".into()
        }]
    );
}

#[test]
fn headless_has_no_viewer_and_the_operator_form_only_the_cr() {
    let mut c = config();
    c.headless = true;
    let mut i = images();
    i.registry_viewer = None;
    let files = render(&c, &i).unwrap();
    let deployment = String::from_utf8(files["deploy/deployment.yaml"].clone()).unwrap();
    assert!(!deployment.contains("registry-viewer"), "{deployment}");
    assert!(!deployment.contains("startupProbe"), "{deployment}");

    c.operator = true;
    i.operator = Some(pinned("registry-operator"));
    let files = render(&c, &i).unwrap();
    assert!(!files.contains_key("deploy/deployment.yaml"));
    let cr = String::from_utf8(files["deploy/devfile-registry.yaml"].clone()).unwrap();
    assert!(cr.contains("kind: DevfileRegistry"), "{cr}");
    assert!(cr.contains(&pinned("devfile-index")), "{cr}");
    let readme = String::from_utf8(files["deploy/README.md"].clone()).unwrap();
    assert!(readme.contains(&pinned("registry-operator")), "{readme}");
}
