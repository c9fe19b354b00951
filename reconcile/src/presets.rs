//! Every format yibao reads by name, in one list: `yibao reconcile --format
//! NAME FILE` works on a fresh machine. A bank's or the tax bureau's export
//! is read through a mapping and a batch-collection return through a
//! layout, each a TOML file under `reconcile/presets/`, built into the
//! binary, that a user can print (`--show-format NAME`), copy and adjust
//! (`--mapping FILE`). The channel bills and bank messages have readers of
//! their own.

use crate::batch_return::Layout;
use crate::csv_mapped::Mapping;
use crate::error::Result;

/// How a named format is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Definition {
    /// Through a [`Mapping`] (TOML): a CSV or Excel export.
    Mapping(&'static str),
    /// Through a batch-collection return's [`Layout`] (TOML).
    Layout(&'static str),
    /// By a reader of its own: nothing to adjust.
    Reader,
}

/// A format yibao reads by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// What `--format` calls it.
    pub name: &'static str,
    /// What it reads, for lists and the README.
    pub description: &'static str,
    pub definition: Definition,
}

impl Preset {
    /// The mapping or layout file's text (TOML); `None` for a reader.
    pub fn toml(&self) -> Option<&'static str> {
        match self.definition {
            Definition::Mapping(text) | Definition::Layout(text) => Some(text),
            Definition::Reader => None,
        }
    }

    /// What `--show-format` prints: the TOML to copy and adjust, or for a
    /// reader what it reads.
    pub fn shown(&self) -> String {
        match self.toml() {
            Some(text) => text.to_string(),
            None => format!(
                "# {}: {}.\n# Read by yibao's own reader, detected by content: there is no mapping to adjust.\n",
                self.name, self.description
            ),
        }
    }

    /// The preset's mapping, if it is read through one. The shipped files
    /// are checked by the tests, so an error here means a build from a
    /// broken file.
    pub fn mapping(&self) -> Option<Result<Mapping>> {
        match self.definition {
            Definition::Mapping(text) => Some(Mapping::from_toml(&format!("preset {}", self.name), text)),
            _ => None,
        }
    }

    /// The preset's batch-return layout, if it is read through one.
    pub fn layout(&self) -> Option<Result<Layout>> {
        match self.definition {
            Definition::Layout(text) => Some(Layout::from_toml(&format!("preset {}", self.name), text)),
            _ => None,
        }
    }
}

const fn mapping(name: &'static str, description: &'static str, text: &'static str) -> Preset {
    Preset { name, description, definition: Definition::Mapping(text) }
}

const fn reader(name: &'static str, description: &'static str) -> Preset {
    Preset { name, description, definition: Definition::Reader }
}

/// Every named format, in the order lists show them.
pub const PRESETS: &[Preset] = &[
    reader("wechat", "WeChat Pay merchant bill of any type (ALL, SUCCESS, REFUND; CSV or gzip)"),
    reader("alipay", "Alipay merchant bill (业务明细; CSV or zip, GBK)"),
    reader("camt053", "ISO 20022 camt.053 bank statement (XML)"),
    reader("camt054", "ISO 20022 camt.054 debit/credit notification (XML)"),
    reader("mt940", "SWIFT MT940 customer statement"),
    mapping("icbc", "中国工商银行 ICBC corporate statement (CSV or Excel)", include_str!("../presets/icbc.toml")),
    mapping("ccb", "中国建设银行 CCB corporate statement (CSV or Excel)", include_str!("../presets/ccb.toml")),
    mapping("abc", "中国农业银行 ABC corporate statement (CSV or Excel)", include_str!("../presets/abc.toml")),
    mapping("boc", "中国银行 BOC corporate statement (CSV or Excel)", include_str!("../presets/boc.toml")),
    mapping("bocom", "交通银行 BoCom corporate statement (CSV or Excel)", include_str!("../presets/bocom.toml")),
    mapping("cmb", "招商银行 CMB corporate statement (CSV or Excel)", include_str!("../presets/cmb.toml")),
    mapping("tax", "tax-bureau 社保费 premium collection export (Excel or CSV)", include_str!("../presets/tax.toml")),
    Preset {
        name: "rural-credit-return",
        description: "rural-credit batch auto-debit return (农信代扣回盘, `|`-delimited GBK)",
        definition: Definition::Layout(include_str!("../presets/rural-credit-return.toml")),
    },
];

/// The named format of a name, if yibao reads one.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|preset| preset.name == name)
}

/// The names of every named format, comma-separated, for messages.
pub fn names() -> String {
    PRESETS.iter().map(|preset| preset.name).collect::<Vec<_>>().join(", ")
}
