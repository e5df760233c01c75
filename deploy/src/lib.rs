//! Deployment files (configs, dashboards, manifests) live beside this crate.
//! Its tests parse them against the `parley` binary's real configuration so
//! they cannot rot; issue 4 adds the manifests and those tests.
