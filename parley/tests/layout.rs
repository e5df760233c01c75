//! The crate map of ARCHITECTURE.md, checked: role crates stand side by
//! side. Each depends on `parley-schemas` and `parley-engines` only among
//! the workspace's crates, never on another role (not even for tests), so
//! a role can be read, built and changed alone; the binary wires them.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

const ROLES: [&str; 4] = [
    "parley-ingest",
    "parley-processors",
    "parley-delivery",
    "parley-analytics",
];
const SHARED: [&str; 2] = ["parley-schemas", "parley-engines"];

/// Workspace crate → the workspace crates it depends on (every kind).
fn workspace_deps() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.contains(d))
                .map(str::to_owned)
                .collect();
            (p["name"].as_str().unwrap_or("").to_owned(), deps)
        })
        .collect()
}

#[test]
fn role_crates_depend_on_schemas_and_engines_only() {
    let deps = workspace_deps();
    for role in ROLES {
        let of_role = deps
            .get(role)
            .unwrap_or_else(|| panic!("{role} is not in the workspace"));
        let others: Vec<&String> = of_role
            .iter()
            .filter(|d| !SHARED.contains(&d.as_str()))
            .collect();
        assert!(
            others.is_empty(),
            "{role} depends on {others:?}: roles depend on {SHARED:?} only (ARCHITECTURE.md, Crates)"
        );
    }
    // The shared crates depend on no role either.
    for shared in SHARED {
        for d in &deps[shared] {
            assert!(
                !ROLES.contains(&d.as_str()),
                "{shared} depends on the role {d}"
            );
        }
    }
}

#[test]
fn the_binary_wires_every_role() {
    let deps = workspace_deps();
    for role in ROLES {
        assert!(
            deps["parley"].iter().any(|d| d == role),
            "parley does not depend on {role}"
        );
    }
}
