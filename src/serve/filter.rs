//! Query filters of the index endpoints, with the semantics of registry-support's
//! `index/server/pkg/util/filter.go`:
//!
//! - String fields (`name`, `displayName`, `description`, `iconUri`, `projectType`, `language`,
//!   `version`, `provider`, `supportUrl`, `git*`; v2: `schemaVersion`, `default`) match *fuzzily*:
//!   both sides lower-cased, punctuation turned into spaces, whitespace collapsed, then a
//!   substring test. An entry passes when its own field matches or, in v2, when at least one of
//!   its versions matches; in the latter case the entry keeps only the matching versions.
//! - Array fields (`tags`, `arch`, `resources`, `starterProjects`, `attributeNames`,
//!   `linkNames`, `links`, `gitRemoteNames`, `gitRemotes`; v2: `commandGroups`,
//!   `deploymentScopes`) take repeated parameters (`tags=a&tags=b`): every requested value must
//!   equal, after the same normalisation, one of the entry's values or one word of them.
//!   An empty field fails the filter, except `arch`: no architectures means every architecture.
//! - Ranges, v2 only: `minVersion`/`maxVersion` (semver-like), `minSchemaVersion`/
//!   `maxSchemaVersion` (`2.x` or `2.x.y`, else 400), `minLastModified`/`maxLastModified`
//!   (RFC 3339 or `YYYY-MM-DD`, else 400) keep the versions in range and drop entries left
//!   without any; an entry without versions is judged by its own field.
//! - `deprecated=true|false`: entries that carry (or do not carry) the `Deprecated` tag.
//!
//! All filters are AND-ed. Two deliberate differences from upstream: the result keeps the
//! order of `index.json` (upstream collects the AND through a Go map, so its order is random),
//! and the versions an entry keeps are the *intersection* of what each filter kept (upstream
//! keeps the shortest list, which can contain versions another filter rejected); an entry left
//! with no version by that intersection is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::index::LooseVersion;
use crate::index::timestamp::{self, days_from_civil};
use crate::index::{EntryType, Git, IndexEntry, VersionEntry};

/// The query string of an index request, in order, repeated keys kept.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn new(pairs: Vec<(String, String)>) -> Query {
        Query { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every pair, in the order sent.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether any parameter that changes the response is present.
    pub fn is_plain(&self) -> bool {
        !self.pairs.iter().any(|(k, _)| {
            k == "icon"
                || k == "deprecated"
                || RANGE_PARAMS.contains(&k.as_str())
                || FieldParam::parse(k).is_some()
                || ArrayParam::parse(k).is_some()
        })
    }
}

const RANGE_PARAMS: [&str; 6] = [
    "minVersion",
    "maxVersion",
    "minSchemaVersion",
    "maxSchemaVersion",
    "minLastModified",
    "maxLastModified",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldParam {
    Name,
    DisplayName,
    Description,
    IconUri,
    ProjectType,
    Language,
    Version,
    SchemaVersion,
    Default,
    GitUrl,
    GitRemoteName,
    GitSubDir,
    GitRevision,
    Provider,
    SupportUrl,
}

impl FieldParam {
    fn parse(s: &str) -> Option<FieldParam> {
        Some(match s {
            "name" => FieldParam::Name,
            "displayName" => FieldParam::DisplayName,
            "description" => FieldParam::Description,
            "iconUri" => FieldParam::IconUri,
            "projectType" => FieldParam::ProjectType,
            "language" => FieldParam::Language,
            "version" => FieldParam::Version,
            "schemaVersion" => FieldParam::SchemaVersion,
            "default" => FieldParam::Default,
            "gitUrl" => FieldParam::GitUrl,
            "gitRemoteName" => FieldParam::GitRemoteName,
            "gitSubDir" => FieldParam::GitSubDir,
            "gitRevision" => FieldParam::GitRevision,
            "provider" => FieldParam::Provider,
            "supportUrl" => FieldParam::SupportUrl,
            _ => return None,
        })
    }

    fn v2_only(self) -> bool {
        matches!(self, FieldParam::SchemaVersion | FieldParam::Default)
    }

    /// The entry's own value; `None` when the field exists only on versions.
    fn of_entry(self, e: &IndexEntry) -> Option<String> {
        let git = |f: fn(&Git) -> &String| e.git.as_ref().map(f).cloned();
        Some(match self {
            FieldParam::Name => e.name.clone(),
            FieldParam::DisplayName => e.display_name.clone(),
            FieldParam::Description => e.description.clone(),
            FieldParam::IconUri => e.icon.clone(),
            FieldParam::ProjectType => e.project_type.clone(),
            FieldParam::Language => e.language.clone(),
            FieldParam::Version => e.version.clone(),
            FieldParam::Provider => e.provider.clone(),
            FieldParam::SupportUrl => e.support_url.clone(),
            FieldParam::GitUrl => git(|g| &g.url).unwrap_or_default(),
            FieldParam::GitRemoteName => git(|g| &g.remote_name).unwrap_or_default(),
            FieldParam::GitSubDir => git(|g| &g.sub_dir).unwrap_or_default(),
            FieldParam::GitRevision => git(|g| &g.revision).unwrap_or_default(),
            FieldParam::SchemaVersion | FieldParam::Default => return None,
        })
    }

    /// A version's value; `None` when versions do not have the field.
    fn of_version(self, v: &VersionEntry) -> Option<String> {
        let git = |f: fn(&Git) -> &String| v.git.as_ref().map(f).cloned();
        Some(match self {
            FieldParam::Description => v.description.clone(),
            FieldParam::IconUri => v.icon.clone(),
            FieldParam::Version => v.version.clone(),
            FieldParam::SchemaVersion => v.schema_version.clone(),
            FieldParam::Default => v.default.to_string(),
            FieldParam::GitUrl => git(|g| &g.url).unwrap_or_default(),
            FieldParam::GitRemoteName => git(|g| &g.remote_name).unwrap_or_default(),
            FieldParam::GitSubDir => git(|g| &g.sub_dir).unwrap_or_default(),
            FieldParam::GitRevision => git(|g| &g.revision).unwrap_or_default(),
            FieldParam::Name
            | FieldParam::DisplayName
            | FieldParam::ProjectType
            | FieldParam::Language
            | FieldParam::Provider
            | FieldParam::SupportUrl => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArrayParam {
    AttributeNames,
    Tags,
    Arch,
    Resources,
    StarterProjects,
    LinkNames,
    Links,
    CommandGroups,
    DeploymentScopes,
    GitRemoteNames,
    GitRemotes,
}

fn true_keys(m: &BTreeMap<String, bool>) -> Vec<String> {
    m.iter()
        .filter(|(_, on)| **on)
        .map(|(k, _)| k.clone())
        .collect()
}

impl ArrayParam {
    fn parse(s: &str) -> Option<ArrayParam> {
        Some(match s {
            "attributeNames" => ArrayParam::AttributeNames,
            "tags" => ArrayParam::Tags,
            "arch" => ArrayParam::Arch,
            "resources" => ArrayParam::Resources,
            "starterProjects" => ArrayParam::StarterProjects,
            "linkNames" => ArrayParam::LinkNames,
            "links" => ArrayParam::Links,
            "commandGroups" => ArrayParam::CommandGroups,
            "deploymentScopes" => ArrayParam::DeploymentScopes,
            "gitRemoteNames" => ArrayParam::GitRemoteNames,
            "gitRemotes" => ArrayParam::GitRemotes,
            _ => return None,
        })
    }

    fn v2_only(self) -> bool {
        matches!(
            self,
            ArrayParam::CommandGroups | ArrayParam::DeploymentScopes
        )
    }

    /// An empty field fails the filter, except for architectures (empty = all of them).
    fn empty_fails(self) -> bool {
        self != ArrayParam::Arch
    }

    fn of_entry(self, e: &IndexEntry) -> Option<Vec<String>> {
        match self {
            ArrayParam::AttributeNames => Some(e.attributes.keys().cloned().collect()),
            _ => self.of_lists(&Lists::from(e)),
        }
    }

    fn of_version(self, v: &VersionEntry) -> Option<Vec<String>> {
        self.of_lists(&Lists::from(v))
    }

    /// The values of a list field that entries and versions both have; `None` for
    /// `attributeNames`, which only entries have.
    fn of_lists(self, l: &Lists<'_>) -> Option<Vec<String>> {
        let remotes = l.git.map(|g| &g.remotes);
        Some(match self {
            ArrayParam::AttributeNames => return None,
            ArrayParam::Tags => l.tags.to_vec(),
            ArrayParam::Arch => l.architectures.to_vec(),
            ArrayParam::Resources => l.resources.to_vec(),
            ArrayParam::StarterProjects => l.starter_projects.to_vec(),
            ArrayParam::LinkNames => l.links.keys().cloned().collect(),
            ArrayParam::Links => l.links.values().cloned().collect(),
            ArrayParam::CommandGroups => true_keys(l.command_groups),
            ArrayParam::DeploymentScopes => true_keys(l.deployment_scopes),
            ArrayParam::GitRemoteNames => remotes
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default(),
            ArrayParam::GitRemotes => remotes
                .map(|r| r.values().cloned().collect())
                .unwrap_or_default(),
        })
    }
}

/// The list fields an [`IndexEntry`] and a [`VersionEntry`] share, borrowed, so one match
/// reads them from either.
struct Lists<'a> {
    tags: &'a [String],
    architectures: &'a [String],
    resources: &'a [String],
    starter_projects: &'a [String],
    links: &'a BTreeMap<String, String>,
    command_groups: &'a BTreeMap<String, bool>,
    deployment_scopes: &'a BTreeMap<String, bool>,
    git: Option<&'a Git>,
}

impl<'a> From<&'a IndexEntry> for Lists<'a> {
    fn from(e: &'a IndexEntry) -> Self {
        Lists {
            tags: &e.tags,
            architectures: &e.architectures,
            resources: &e.resources,
            starter_projects: &e.starter_projects,
            links: &e.links,
            command_groups: &e.command_groups,
            deployment_scopes: &e.deployment_scopes,
            git: e.git.as_ref(),
        }
    }
}

impl<'a> From<&'a VersionEntry> for Lists<'a> {
    fn from(v: &'a VersionEntry) -> Self {
        Lists {
            tags: &v.tags,
            architectures: &v.architectures,
            resources: &v.resources,
            starter_projects: &v.starter_projects,
            links: &v.links,
            command_groups: &v.command_groups,
            deployment_scopes: &v.deployment_scopes,
            git: v.git.as_ref(),
        }
    }
}

/// Lower-cases, turns everything but ASCII letters and digits into spaces, collapses runs of
/// spaces and trims: `"Spring Boot®"` → `"spring boot"`.
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c.to_ascii_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

fn field_matches(value: &str, wanted: &str) -> bool {
    normalize(value).contains(&normalize(wanted))
}

/// Every requested value is one of `values` or one word of one of them (after normalising).
fn array_matches(values: &[String], wanted: &[&str]) -> bool {
    let mut set = HashSet::new();
    for v in values {
        let n = normalize(v);
        for word in n.split(' ') {
            set.insert(word.to_string());
        }
        set.insert(n);
    }
    wanted.iter().all(|w| set.contains(&normalize(w)))
}

/// Keeps an entry when `entry_ok`, or (v2) when some versions pass `version_ok`: then only
/// those. `entry_ok` is `None` when the field exists only on versions.
fn filter_entries(
    entries: &[IndexEntry],
    v1: bool,
    entry_ok: impl Fn(&IndexEntry) -> Option<bool>,
    version_ok: impl Fn(&VersionEntry) -> Option<bool>,
) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    for entry in entries {
        let own = entry_ok(entry);
        let mut keep = own.unwrap_or(false);
        let mut kept_versions = None;
        if !v1 {
            let passing: Vec<VersionEntry> = entry
                .versions
                .iter()
                .filter(|v| version_ok(v).unwrap_or(false))
                .cloned()
                .collect();
            let versions_apply = entry
                .versions
                .first()
                .is_some_and(|v| version_ok(v).is_some());
            if versions_apply && !passing.is_empty() {
                kept_versions = Some(passing);
                keep = true;
            }
        }
        if keep {
            let mut e = entry.clone();
            if let Some(vs) = kept_versions {
                e.versions = vs;
            }
            out.push(e);
        }
    }
    out
}

fn filter_field(
    entries: &[IndexEntry],
    v1: bool,
    param: FieldParam,
    wanted: &str,
) -> Vec<IndexEntry> {
    filter_entries(
        entries,
        v1,
        |e| param.of_entry(e).map(|v| field_matches(&v, wanted)),
        |v| param.of_version(v).map(|x| field_matches(&x, wanted)),
    )
}

fn filter_array(
    entries: &[IndexEntry],
    v1: bool,
    param: ArrayParam,
    wanted: &[&str],
) -> Vec<IndexEntry> {
    let ok = move |values: Vec<String>| {
        if values.is_empty() {
            !param.empty_fails()
        } else {
            array_matches(&values, wanted)
        }
    };
    filter_entries(
        entries,
        v1,
        |e| param.of_entry(e).map(ok),
        |v| param.of_version(v).map(ok),
    )
}

/// A bad filter parameter: answered with 400 and `{"status": message}`.
#[derive(Debug, PartialEq, Eq)]
pub struct BadFilter(pub String);

/// Applies every filter of `query` to `entries` (already narrowed to the endpoint's type, and
/// for v1 already converted).
pub fn apply(
    entries: Vec<IndexEntry>,
    query: &Query,
    v1: bool,
) -> Result<Vec<IndexEntry>, BadFilter> {
    let mut entries = entries;
    if !v1 {
        entries = ranges(entries, query)?;
    }

    let mut results: Vec<Vec<IndexEntry>> = Vec::new();
    for (key, value) in &query.pairs {
        if let Some(param) = FieldParam::parse(key) {
            if v1 && param.v2_only() {
                continue;
            }
            // Repeated string parameters: the first one counts, as upstream's binding does.
            if query.get(key) != Some(value.as_str()) {
                continue;
            }
            results.push(filter_field(&entries, v1, param, value));
        }
    }
    let mut seen_arrays = Vec::new();
    for (key, _) in &query.pairs {
        if let Some(param) = ArrayParam::parse(key) {
            if (v1 && param.v2_only()) || seen_arrays.contains(&param) {
                continue;
            }
            seen_arrays.push(param);
            results.push(filter_array(&entries, v1, param, &query.all(key)));
        }
    }
    if !results.is_empty() {
        entries = intersect(entries, &results);
    }

    if let Some(value) = query.get("deprecated") {
        let wanted = match value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(BadFilter(format!(
                    "deprecated value {value} is not valid, it should be true or false"
                )));
            }
        };
        entries.retain(|e| e.tags.iter().any(|t| t.eq_ignore_ascii_case("deprecated")) == wanted);
    }
    Ok(entries)
}

/// The entries present in every result, in `entries`' order, each with the versions every
/// result kept. Each result is looked up by (name, type) and each kept version by name through
/// sets, so the cost grows with the entries and versions, not with their product.
fn intersect(entries: Vec<IndexEntry>, results: &[Vec<IndexEntry>]) -> Vec<IndexEntry> {
    type Key<'a> = (&'a str, Option<&'a EntryType>);
    let lookups: Vec<HashMap<Key<'_>, HashSet<&str>>> = results
        .iter()
        .map(|result| {
            let mut lookup = HashMap::new();
            for e in result {
                // The first entry of a name and type counts, as a search from the front would.
                lookup
                    .entry((e.name.as_str(), e.entry_type.as_ref()))
                    .or_insert_with(|| e.versions.iter().map(|v| v.version.as_str()).collect());
            }
            lookup
        })
        .collect();
    let mut out = Vec::new();
    'entries: for mut entry in entries {
        let had_versions = !entry.versions.is_empty();
        for lookup in &lookups {
            let Some(kept) = lookup.get(&(entry.name.as_str(), entry.entry_type.as_ref())) else {
                continue 'entries;
            };
            entry.versions.retain(|v| kept.contains(v.version.as_str()));
        }
        if had_versions && entry.versions.is_empty() {
            continue;
        }
        out.push(entry);
    }
    out
}

fn schema_version_param(query: &Query, key: &str) -> Result<Option<LooseVersion>, BadFilter> {
    let Some(value) = query.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let ok = {
        let parts: Vec<&str> = value.split('.').collect();
        (parts.len() == 2 || parts.len() == 3)
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && matches!(parts[0], "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9")
    };
    match LooseVersion::parse(value).filter(|_| ok) {
        Some(v) => Ok(Some(v)),
        None => Err(BadFilter(format!(
            "{key} {value} is not valid, version format should be '+2.x' or '+2.x.x'."
        ))),
    }
}

fn version_param(query: &Query, key: &str) -> Result<Option<LooseVersion>, BadFilter> {
    let Some(value) = query.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    LooseVersion::parse(value)
        .map(Some)
        .ok_or_else(|| BadFilter(format!("{key} {value} is not a valid version")))
}

fn time_param(query: &Query, key: &str) -> Result<Option<Timestamp>, BadFilter> {
    let Some(value) = query.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    Timestamp::parse(value).map(Some).ok_or_else(|| {
        BadFilter(format!(
            "{key} {value} is not valid, it should be an RFC 3339 date-time or a YYYY-MM-DD date"
        ))
    })
}

fn in_range<T: Ord>(value: Option<T>, min: &Option<T>, max: &Option<T>) -> bool {
    if min.is_none() && max.is_none() {
        return true;
    }
    let Some(value) = value else {
        return false;
    };
    min.as_ref().is_none_or(|m| &value >= m) && max.as_ref().is_none_or(|m| &value <= m)
}

fn ranges(entries: Vec<IndexEntry>, query: &Query) -> Result<Vec<IndexEntry>, BadFilter> {
    let min_schema = schema_version_param(query, "minSchemaVersion")?;
    let max_schema = schema_version_param(query, "maxSchemaVersion")?;
    let min_version = version_param(query, "minVersion")?;
    let max_version = version_param(query, "maxVersion")?;
    let min_time = time_param(query, "minLastModified")?;
    let max_time = time_param(query, "maxLastModified")?;
    if [&min_schema, &max_schema, &min_version, &max_version]
        .iter()
        .all(|o| o.is_none())
        && min_time.is_none()
        && max_time.is_none()
    {
        return Ok(entries);
    }
    let version_ok = |v: &VersionEntry| {
        in_range(
            LooseVersion::parse(&v.schema_version),
            &min_schema,
            &max_schema,
        ) && in_range(LooseVersion::parse(&v.version), &min_version, &max_version)
            && in_range(v.last_modified.map(Timestamp::of), &min_time, &max_time)
    };
    let mut out = Vec::new();
    for mut entry in entries {
        if entry.versions.is_empty() {
            // Judged by its own fields; it has no schemaVersion of its own.
            let ok = min_schema.is_none()
                && max_schema.is_none()
                && in_range(
                    LooseVersion::parse(&entry.version),
                    &min_version,
                    &max_version,
                )
                && in_range(entry.last_modified.map(Timestamp::of), &min_time, &max_time);
            if ok {
                out.push(entry);
            }
            continue;
        }
        entry.versions.retain(version_ok);
        if !entry.versions.is_empty() {
            out.push(entry);
        }
    }
    Ok(out)
}

/// An instant, comparable across time zones: seconds since the Unix epoch and nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(i64, u32);

impl Timestamp {
    /// The instant of an index `lastModified`.
    fn of(t: timestamp::Timestamp) -> Timestamp {
        Timestamp(t.unix_seconds(), t.subsec_nanos())
    }

    /// RFC 3339 (`2024-05-13T12:32:02+02:00`, `…Z`, fractional seconds) or a date
    /// (`2024-05-13`, midnight UTC).
    pub fn parse(s: &str) -> Option<Timestamp> {
        let s = s.trim();
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        let days = days_from_civil(year, month, day);
        if b.len() == 10 {
            return Some(Timestamp(days * 86_400, 0));
        }
        if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || m > 59 || sec > 60 {
            return None;
        }
        let mut i = 19;
        let mut nanos: u32 = 0;
        if b[i] == b'.' {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = s.get(start..i)?;
            if frac.is_empty() {
                return None;
            }
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            nanos = digits.parse().ok()?;
        }
        let offset = match s.get(i..)? {
            "Z" | "z" => 0,
            tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                if b[i + 3] != b':' || oh > 23 || om > 59 {
                    return None;
                }
                let sign = if tz.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return None,
        };
        Some(Timestamp(
            days * 86_400 + h * 3600 + m * 60 + sec - offset,
            nanos,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_upstream() {
        assert_eq!(normalize("  Spring   Boot® "), "spring boot");
        assert_eq!(normalize("Vert.x"), "vert x");
        assert!(field_matches("Spring Boot® using Java", "boot using"));
        assert!(array_matches(&["WildFly Bootable".into()], &["bootable"]));
        assert!(array_matches(
            &["WildFly Bootable".into()],
            &["wildfly bootable"]
        ));
        assert!(!array_matches(&["WildFly Bootable".into()], &["boot"]));
    }

    #[test]
    fn timestamps() {
        let t = |s| Timestamp::parse(s).unwrap();
        assert_eq!(t("1970-01-01T00:00:00Z"), Timestamp(0, 0));
        assert_eq!(t("2024-05-13T12:32:02+02:00"), t("2024-05-13T10:32:02Z"));
        assert!(t("2024-05-13") < t("2024-05-13T00:00:00.5Z"));
        assert_eq!(t("2000-03-01"), Timestamp(951_868_800, 0));
        for bad in [
            "2024-13-01",
            "2024-05-13T12:32",
            "yesterday",
            "2024-05-13T12:32:02+0200",
        ] {
            assert!(Timestamp::parse(bad).is_none(), "{bad}");
        }
    }
}
