//! The Kubernetes objects of `deploy/`, as JSON values. What upstream deploys (registry-support's
//! Helm chart, registry-operator's CRDs) is the model: the same containers, ports, probes,
//! mounts and security context; images by digest; no chart, release or telemetry labels.

use serde_json::{Value, json};

use super::{Images, registry_url};
use crate::manifest::DeployConfig;

/// The registry's in-pod ports: the index server's API and metrics, the sidecar's API and
/// metrics, the viewer.
const INDEX_PORT: u16 = 8080;
const INDEX_METRICS_PORT: u16 = 7071;
const OCI_PORT: u16 = 5000;
const OCI_METRICS_PORT: u16 = 5001;
const VIEWER_PORT: u16 = 3000;

/// The sidecar's config (CNCF distribution), as upstream's chart mounts it.
pub const REGISTRY_CONFIG: &str = "\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
  debug:
    addr: :5001
    prometheus:
      enabled: true
      path: /metrics
";

fn metadata(c: &DeployConfig) -> Value {
    json!({"name": c.name, "namespace": c.namespace, "labels": {"app": c.name}})
}

pub fn namespace(c: &DeployConfig) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": c.namespace}})
}

pub fn config_map(c: &DeployConfig) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(c),
        "data": {"registry-config.yml": REGISTRY_CONFIG},
    })
}

fn probe(path: &str, port: u16, initial: u32, timeout: u32) -> Value {
    json!({
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "initialDelaySeconds": initial,
        "periodSeconds": 10,
        "timeoutSeconds": timeout,
    })
}

/// Upstream's container security context: non-root, no privilege escalation, no
/// capabilities, the runtime's seccomp profile.
fn security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

fn memory() -> Value {
    json!({"limits": {"memory": "256Mi"}, "requests": {"memory": "64Mi"}})
}

fn index_container(c: &DeployConfig, image: &str) -> Value {
    let mut container = json!({
        "name": "devfile-registry",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http", "containerPort": INDEX_PORT, "protocol": "TCP"},
            {"name": "index-metrics", "containerPort": INDEX_METRICS_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": probe("/health", INDEX_PORT, 15, 3),
        "readinessProbe": probe("/health", INDEX_PORT, 15, 3),
        "resources": memory(),
        "env": [
            {"name": "REGISTRY_HEADLESS", "value": c.headless.to_string()},
            {"name": "REGISTRY_NAME", "value": c.name},
        ],
        "securityContext": security_context(),
    });
    if !c.headless {
        // Upstream's chart: the pod starts once the viewer answers.
        container["startupProbe"] = probe("/viewer", VIEWER_PORT, 30, 20);
    }
    container
}

fn viewer_container(c: &DeployConfig, image: &str) -> Value {
    let registries = json!([{
        "name": c.name,
        "url": format!("http://localhost:{INDEX_PORT}"),
        "fqdn": registry_url(c),
    }]);
    json!({
        "name": "registry-viewer",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "viewer", "containerPort": VIEWER_PORT, "protocol": "TCP"}],
        "livenessProbe": probe("/viewer", VIEWER_PORT, 15, 20),
        "readinessProbe": probe("/viewer", VIEWER_PORT, 15, 20),
        "resources": memory(),
        "env": [{"name": "DEVFILE_REGISTRIES", "value": registries.to_string()}],
        "securityContext": security_context(),
    })
}

fn oci_container(image: &str) -> Value {
    json!({
        "name": "oci-registry",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "oci", "containerPort": OCI_PORT, "protocol": "TCP"},
            {"name": "oci-metrics", "containerPort": OCI_METRICS_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": probe("/v2/", OCI_PORT, 30, 3),
        "readinessProbe": probe("/v2/", OCI_PORT, 3, 3),
        "resources": memory(),
        "securityContext": security_context(),
        "volumeMounts": [
            {"name": "devfile-registry-storage", "mountPath": "/var/lib/registry"},
            {"name": "config", "mountPath": "/etc/docker/registry", "readOnly": true},
        ],
    })
}

pub fn deployment(c: &DeployConfig, images: &Images) -> Value {
    let mut containers = vec![index_container(c, &images.devfile_index)];
    if let Some(viewer) = images.registry_viewer.as_deref().filter(|_| !c.headless) {
        containers.push(viewer_container(c, viewer));
    }
    containers.push(oci_container(&images.oci_registry));
    let storage = if c.storage.is_some() {
        json!({"name": "devfile-registry-storage", "persistentVolumeClaim": {"claimName": c.name}})
    } else {
        json!({"name": "devfile-registry-storage", "emptyDir": {}})
    };
    let mut pod = json!({
        "containers": containers,
        "volumes": [
            storage,
            {
                "name": "config",
                "configMap": {
                    "name": c.name,
                    "items": [{"key": "registry-config.yml", "path": "config.yml"}],
                },
            },
        ],
    });
    if c.storage.is_some() {
        // Upstream's chart: a persistent volume is written by a fixed non-root user.
        pod["securityContext"] = json!({
            "runAsNonRoot": true,
            "runAsUser": 1001,
            "runAsGroup": 2001,
            "fsGroup": 3001,
        });
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(c),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": c.name}},
            "strategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": {"app": c.name}}, "spec": pod},
        },
    })
}

pub fn service(c: &DeployConfig) -> Value {
    let port = |name: &str, port: u16| json!({"name": name, "protocol": "TCP", "port": port, "targetPort": port});
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(c),
        "spec": {
            "ports": [
                port("http", INDEX_PORT),
                port("oci-metrics", OCI_METRICS_PORT),
                port("index-metrics", INDEX_METRICS_PORT),
            ],
            "selector": {"app": c.name},
        },
    })
}

pub fn pvc(c: &DeployConfig) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(c),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": c.storage}},
        },
    })
}

pub fn ingress(c: &DeployConfig, host: &str, class: Option<&str>) -> Value {
    let mut spec = json!({
        "rules": [{
            "host": host,
            "http": {"paths": [{
                "path": "/",
                "pathType": "Prefix",
                "backend": {"service": {"name": c.name, "port": {"number": INDEX_PORT}}},
            }]},
        }],
    });
    if let Some(class) = class {
        spec["ingressClassName"] = json!(class);
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(c),
        "spec": spec,
    })
}

pub fn route(c: &DeployConfig, host: &str) -> Value {
    json!({
        "apiVersion": "route.openshift.io/v1",
        "kind": "Route",
        "metadata": metadata(c),
        "spec": {
            "host": host,
            "to": {"kind": "Service", "name": c.name, "weight": 100},
            "port": {"targetPort": INDEX_PORT},
        },
    })
}

pub fn devfile_registry_cr(c: &DeployConfig, images: &Images) -> Value {
    let mut spec = json!({
        "devfileIndex": {"image": images.devfile_index, "imagePullPolicy": "IfNotPresent"},
        "ociRegistry": {"image": images.oci_registry, "imagePullPolicy": "IfNotPresent"},
        "headless": c.headless,
        "telemetry": {"registryName": c.name},
        "tls": {"enabled": false},
    });
    if let Some(viewer) = images.registry_viewer.as_deref().filter(|_| !c.headless) {
        spec["registryViewer"] = json!({"image": viewer, "imagePullPolicy": "IfNotPresent"});
    }
    if let Some(size) = &c.storage {
        spec["storage"] = json!({"enabled": true, "registryVolumeSize": size});
    }
    if let Some(e) = &c.expose {
        spec["hostnameOverride"] = json!(e.host());
    }
    if let Some(crate::manifest::Expose::Ingress {
        class: Some(class), ..
    }) = &c.expose
    {
        spec["k8s"] = json!({"ingressClass": class});
    }
    json!({
        "apiVersion": "registry.devfile.io/v1alpha1",
        "kind": "DevfileRegistry",
        "metadata": {"name": c.name, "namespace": c.namespace},
        "spec": spec,
    })
}

pub fn cluster_registries_list(c: &DeployConfig) -> Value {
    json!({
        "apiVersion": "registry.devfile.io/v1alpha1",
        "kind": "ClusterDevfileRegistriesList",
        "metadata": {"name": c.name},
        "spec": {"devfileRegistries": [{"name": c.name, "url": registry_url(c)}]},
    })
}

/// A merge patch for Che's `CheCluster`: the offline registry instead of Che's internal one.
pub fn checluster_patch(c: &DeployConfig) -> Value {
    json!({
        "spec": {"components": {"devfileRegistry": {
            "disableInternalRegistry": true,
            "externalDevfileRegistries": [{"url": registry_url(c)}],
        }}},
    })
}
