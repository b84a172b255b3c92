//! The deployment of the offline registry into the cluster: the bytes of every file of
//! `deploy/`, from the lock's `deploy` entry and the images as they landed at the target.
//!
//! Pure: no I/O, no clock. The same inputs give the same bytes (objects are built as JSON
//! values, whose maps are sorted in this build, and written as YAML by serde-saphyr), so an
//! unchanged lock rewrites nothing and a new devfile-index digest changes exactly the line
//! that names it.
//!
//! Two forms, as upstream ships two (registry-support's Helm chart and registry-operator):
//!
//! - **plain** (`operator #false`): `kustomization.yaml` over the Namespace, the Deployment
//!   (containers `devfile-registry` :8080 with `/health` probes, `oci-registry` :5000 with
//!   the ConfigMap's `registry-config.yml` at `/etc/docker/registry/config.yml` and its
//!   storage at `/var/lib/registry`, and `registry-viewer` :3000 unless headless), the
//!   Service (8080, 5001, 7071), the ConfigMap, a PVC when `storage` is set, and an Ingress
//!   or an OpenShift Route when asked; the security context is upstream's (non-root, no
//!   privilege escalation, every capability dropped, the runtime's seccomp profile);
//! - **operator** (`operator #true`): the Namespace and a `DevfileRegistry` CR
//!   (`registry.devfile.io/v1alpha1`) for registry-operator, which must run from its mirrored
//!   image (named in `deploy/README.md`).
//!
//! Both add client registration beside, outside the kustomization (they need Che's or the
//! operator's CRDs): `clients/cluster-devfile-registries-list.yaml`,
//! `clients/checluster-patch.yaml`, and the `odo preference add registry` line in
//! `README.md`. Every image is named by digest (`name:tag@sha256:…`, as devfiles are).
//!
//! [`check`] is `airgap verify`'s side: the images named in `deploy/` and the hosts its URLs
//! name.

pub mod check;
mod objects;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::manifest::{DeployConfig, Expose};

pub use check::{Finding, check};

/// The folder, under the output root, that holds the deployment.
pub const DIR: &str = "deploy";

/// The images the deployment runs, each as it landed at the target, pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub devfile_index: String,
    pub oci_registry: String,
    /// Unless headless.
    pub registry_viewer: Option<String>,
    /// The operator form's operator.
    pub operator: Option<String>,
}

/// The registry's URL for clients: its Ingress or Route host, else the Service's in-cluster
/// name.
pub fn registry_url(c: &DeployConfig) -> String {
    match &c.expose {
        Some(e) => format!("http://{}", e.host()),
        None => format!("http://{}.{}.svc:8080", c.name, c.namespace),
    }
}

/// Every file of `deploy/`, path (relative to the output root) → bytes.
pub fn render(c: &DeployConfig, images: &Images) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut objects: Vec<(&str, Value)> = vec![("namespace.yaml", objects::namespace(c))];
    if c.operator {
        objects.push((
            "devfile-registry.yaml",
            objects::devfile_registry_cr(c, images),
        ));
    } else {
        objects.push(("configmap.yaml", objects::config_map(c)));
        objects.push(("deployment.yaml", objects::deployment(c, images)));
        objects.push(("service.yaml", objects::service(c)));
        if c.storage.is_some() {
            objects.push(("pvc.yaml", objects::pvc(c)));
        }
        match &c.expose {
            Some(Expose::Ingress { host, class }) => {
                objects.push(("ingress.yaml", objects::ingress(c, host, class.as_deref())))
            }
            Some(Expose::Route { host }) => objects.push(("route.yaml", objects::route(c, host))),
            None => {}
        }
    }
    let mut files = BTreeMap::new();
    let resources: Vec<&str> = objects.iter().map(|(f, _)| *f).collect();
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": c.namespace,
        "resources": resources,
    });
    files.insert(path("kustomization.yaml"), yaml(&kustomization)?);
    for (file, object) in &objects {
        files.insert(path(file), yaml(object)?);
    }
    files.insert(
        path("clients/cluster-devfile-registries-list.yaml"),
        yaml(&objects::cluster_registries_list(c))?,
    );
    files.insert(
        path("clients/checluster-patch.yaml"),
        yaml(&objects::checluster_patch(c))?,
    );
    files.insert(path("README.md"), readme(c, images).into_bytes());
    Ok(files)
}

fn path(file: &str) -> String {
    format!("{DIR}/{file}")
}

fn yaml(v: &Value) -> Result<Vec<u8>, String> {
    serde_saphyr::to_string(v)
        .map(String::into_bytes)
        .map_err(|e| format!("cannot write YAML: {e}"))
}

fn readme(c: &DeployConfig, images: &Images) -> String {
    let url = registry_url(c);
    let mut image_lines = vec![
        format!("- devfile-index: `{}`", images.devfile_index),
        format!("- oci-registry: `{}`", images.oci_registry),
    ];
    if let Some(v) = &images.registry_viewer {
        image_lines.push(format!("- registry-viewer: `{v}`"));
    }
    if let Some(o) = &images.operator {
        image_lines.push(format!("- registry-operator: `{o}`"));
    }
    let apply = if c.operator {
        format!(
            "The operator form: registry-operator must run in the cluster, from its mirrored\n\
             image `{}`\n\
             (for example `make deploy IMG=…` in registry-operator's repository). Then\n\n\
             \x20   kubectl apply -k deploy\n\n\
             creates the `{}` namespace and the `DevfileRegistry` CR `{}`, whose images are pinned by digest.\n",
            images.operator.as_deref().unwrap_or("(not locked)"),
            c.namespace,
            c.name
        )
    } else {
        format!(
            "    kubectl apply -k deploy\n\n\
             creates the `{}` namespace and the registry's Deployment, Service and ConfigMap\n\
             (and its PVC, Ingress or Route when configured), every image pinned by digest.\n",
            c.namespace
        )
    };
    format!(
        "# The offline devfile registry, in the cluster\n\n\
         Written by `airgap apply`; do not edit (the next apply rewrites it).\n\n\
         ## Deploy\n\n{apply}\n\
         An update is `airgap lock --update && airgap apply && kubectl apply -k deploy`: a new\n\
         lock changes the digests here, so the pod rolls out; an unchanged lock changes no byte.\n\n\
         Images:\n\n{}\n\n\
         ## Register the registry with clients\n\n\
         The registry's URL: {url}\n\n\
         - registry-operator's list of cluster-wide registries:\n  \
         `kubectl apply -f deploy/clients/cluster-devfile-registries-list.yaml`\n\
         - Eclipse Che (the registry replaces Che's internal one):\n  \
         `kubectl patch checluster eclipse-che -n eclipse-che --type merge --patch-file deploy/clients/checluster-patch.yaml`\n\
         - odo:\n\n\
         \x20   odo preference add registry {} {url}\n",
        image_lines.join("\n"),
        c.name,
    )
}

#[cfg(test)]
mod tests;
