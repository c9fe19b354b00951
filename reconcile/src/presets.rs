//! Mappings shipped with yibao, named: `yibao reconcile --format icbc FILE`
//! works on a fresh machine. Each is a file under `fixtures/mappings/`,
//! built into the binary, that a user can print (`--show-format NAME`),
//! copy and adjust (`--mapping FILE`).

use crate::csv_mapped::Mapping;
use crate::error::Result;

/// A shipped mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// What `--format` calls it.
    pub name: &'static str,
    /// What it reads, for lists and the README.
    pub description: &'static str,
    /// The mapping file's text (TOML).
    pub toml: &'static str,
}

impl Preset {
    /// The preset's mapping. The shipped files are checked by the tests, so
    /// an error here means a build from a broken file.
    pub fn mapping(&self) -> Result<Mapping> {
        Mapping::from_toml(&format!("preset {}", self.name), self.toml)
    }
}

/// Every preset, in the order lists show them.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "icbc",
        description: "中国工商银行 ICBC corporate statement (CSV or Excel)",
        toml: include_str!("../../fixtures/mappings/icbc.toml"),
    },
    Preset {
        name: "ccb",
        description: "中国建设银行 CCB corporate statement (CSV or Excel)",
        toml: include_str!("../../fixtures/mappings/ccb.toml"),
    },
    Preset {
        name: "abc",
        description: "中国农业银行 ABC corporate statement (CSV or Excel)",
        toml: include_str!("../../fixtures/mappings/abc.toml"),
    },
    Preset {
        name: "boc",
        description: "中国银行 BOC corporate statement (CSV or Excel)",
        toml: include_str!("../../fixtures/mappings/boc.toml"),
    },
    Preset {
        name: "bocom",
        description: "交通银行 BoCom corporate statement (CSV or Excel)",
        toml: include_str!("../../fixtures/mappings/bocom.toml"),
    },
    Preset {
        name: "cmb",
        description: "招商银行 CMB corporate statement (CSV or Excel)",
        toml: include_str!("../../fixtures/mappings/cmb.toml"),
    },
    Preset {
        name: "tax",
        description: "tax-bureau 社保费 premium collection export (Excel or CSV)",
        toml: include_str!("../../fixtures/mappings/tax.toml"),
    },
];

/// The preset of a name, if yibao ships one.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|preset| preset.name == name)
}

/// The names of every preset, comma-separated, for messages.
pub fn names() -> String {
    PRESETS.iter().map(|preset| preset.name).collect::<Vec<_>>().join(", ")
}
