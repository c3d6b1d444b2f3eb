//! Organisation units (党组织) and their tree.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use ukey_proto::UnitCode;

/// What kind of party organisation a unit is. The assessment counts 党委, 党工委 and 党总支 as
/// "upper" organisations (总支及以上).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnitKind {
    /// 党委 (including local committees such as 区委).
    Committee,
    /// 党工委 / 工委.
    WorkingCommittee,
    /// 党总支.
    GeneralBranch,
    /// 党支部 (including 联合党支部).
    Branch,
    /// 党组.
    LeadingGroup,
    /// Anything else (an administrative node of the tree, say).
    Other,
}

pub const ALL_KINDS: &[UnitKind] = &[
    UnitKind::Committee,
    UnitKind::WorkingCommittee,
    UnitKind::GeneralBranch,
    UnitKind::Branch,
    UnitKind::LeadingGroup,
    UnitKind::Other,
];

impl UnitKind {
    /// The stable code stored in the database.
    pub fn code(self) -> &'static str {
        match self {
            UnitKind::Committee => "committee",
            UnitKind::WorkingCommittee => "working_committee",
            UnitKind::GeneralBranch => "general_branch",
            UnitKind::Branch => "branch",
            UnitKind::LeadingGroup => "leading_group",
            UnitKind::Other => "other",
        }
    }

    /// The name users know.
    pub fn label(self) -> &'static str {
        match self {
            UnitKind::Committee => "党委",
            UnitKind::WorkingCommittee => "党工委",
            UnitKind::GeneralBranch => "党总支",
            UnitKind::Branch => "党支部",
            UnitKind::LeadingGroup => "党组",
            UnitKind::Other => "其他",
        }
    }

    /// Whether the assessment counts this kind among the upper organisations (总支及以上).
    pub fn is_upper(self) -> bool {
        matches!(
            self,
            UnitKind::Committee | UnitKind::WorkingCommittee | UnitKind::GeneralBranch
        )
    }

    /// Reads a kind from its code or its Chinese label.
    pub fn parse(s: &str) -> Option<UnitKind> {
        let s = s.trim();
        ALL_KINDS
            .iter()
            .copied()
            .find(|k| k.code() == s || k.label() == s)
            .or(match s {
                "工委" => Some(UnitKind::WorkingCommittee),
                "总支" => Some(UnitKind::GeneralBranch),
                "支部" | "联合党支部" => Some(UnitKind::Branch),
                _ => None,
            })
    }

    /// Guesses the kind from a unit's name, as the seed lists name them (`…街道党工委`,
    /// `…镇党委`, `区直机关工委`, `…教工支部`). Names that say nothing give [`UnitKind::Other`].
    pub fn infer_from_name(name: &str) -> UnitKind {
        let n = name.trim();
        if n.ends_with("工委") {
            UnitKind::WorkingCommittee
        } else if n.ends_with("总支") || n.ends_with("总支部委员会") {
            UnitKind::GeneralBranch
        } else if n.ends_with("支部") || n.ends_with("支部委员会") {
            UnitKind::Branch
        } else if n.ends_with("党组") {
            UnitKind::LeadingGroup
        } else if n.ends_with("党委") || n.ends_with("委员会") || n.ends_with('委') {
            UnitKind::Committee
        } else {
            UnitKind::Other
        }
    }
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A unit to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUnit {
    pub code: UnitCode,
    /// Full name, as on the unit's seal (公章上的全称).
    pub name: String,
    pub short_name: Option<String>,
    pub kind: UnitKind,
    pub parent: Option<UnitCode>,
    pub examinee: bool,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
}

/// A unit as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    pub id: i64,
    pub code: UnitCode,
    pub name: String,
    pub short_name: Option<String>,
    pub kind: UnitKind,
    pub parent_id: Option<i64>,
    pub parent_code: Option<UnitCode>,
    /// Materialized path of ids, `/1/5/23/`: a subtree is one indexed range query.
    pub path: String,
    pub depth: i32,
    pub examinee: bool,
    pub active: bool,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Longest unit name accepted (the longest seal names are well under this).
pub const MAX_NAME_CHARS: usize = 200;

/// Why a unit name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("the name contains a control character")]
    ControlCharacter,
}

/// Trims a unit or person name and checks it.
pub fn clean_name(raw: &str) -> Result<String, NameError> {
    let name = raw.trim();
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.chars().count() > MAX_NAME_CHARS {
        Err(NameError::TooLong)
    } else if name.chars().any(char::is_control) {
        Err(NameError::ControlCharacter)
    } else {
        Ok(name.to_owned())
    }
}

/// The materialized path of a child of `parent_path` with id `id`.
pub fn child_path(parent_path: Option<&str>, id: i64) -> String {
    format!("{}{id}/", parent_path.unwrap_or("/"))
}

/// The exclusive upper bound of the paths strictly below `path` (`/1/5/` → `/1/50`): every
/// descendant's path starts with `path`, and `'/' + 1 == '0'`, so `path < p < bound` is the
/// subtree in byte order, served by the path index on both backends.
pub fn subtree_upper_bound(path: &str) -> String {
    let mut bound = path.trim_end_matches('/').to_owned();
    bound.push('0');
    bound
}

/// Orders units as a tree read top-down: each unit right before its subtree, siblings by code
/// (the storage's path order goes by internal ids, which differ between installations).
pub fn sort_as_tree(units: &mut [Unit]) {
    let codes: std::collections::HashMap<i64, String> = units
        .iter()
        .map(|u| (u.id, u.code.as_str().to_owned()))
        .collect();
    let key = |u: &Unit| -> Vec<String> {
        u.path
            .split('/')
            .filter_map(|id| id.parse::<i64>().ok())
            .map(|id| codes.get(&id).cloned().unwrap_or_default())
            .collect()
    };
    units.sort_by_cached_key(key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_inferred_from_the_seed_names() {
        assert_eq!(
            UnitKind::infer_from_name("李渡街道党工委"),
            UnitKind::WorkingCommittee
        );
        assert_eq!(
            UnitKind::infer_from_name("区直机关工委"),
            UnitKind::WorkingCommittee
        );
        assert_eq!(UnitKind::infer_from_name("清溪镇党委"), UnitKind::Committee);
        assert_eq!(UnitKind::infer_from_name("沙坪坝区委"), UnitKind::Committee);
        assert_eq!(UnitKind::infer_from_name("教工支部"), UnitKind::Branch);
        assert_eq!(
            UnitKind::infer_from_name("机关党总支"),
            UnitKind::GeneralBranch
        );
        assert_eq!(UnitKind::infer_from_name("区委党校"), UnitKind::Other);
    }

    #[test]
    fn the_subtree_bound_sits_just_past_every_descendant() {
        let p = child_path(Some("/1/"), 5);
        assert_eq!(p, "/1/5/");
        let bound = subtree_upper_bound(&p);
        assert_eq!(bound, "/1/50");
        for inside in ["/1/5/9/", "/1/5/123/77/"] {
            assert!(inside > p.as_str() && inside < bound.as_str());
        }
        for outside in ["/1/5/", "/1/50/", "/1/6/", "/1/", "/1/55/"] {
            assert!(
                !(outside > p.as_str() && outside < bound.as_str()),
                "{outside}"
            );
        }
    }
}
