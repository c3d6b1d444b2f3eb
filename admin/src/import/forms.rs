//! The three forms, row by row.

use super::{Form, ImportError, Plan, Row, RowProblem};
use crate::domain::unit::clean_name;
use crate::domain::{Administrator, Mobile, NewAdministrator, NewUnit, Unit, UnitKind};
use std::collections::{HashMap, HashSet};
use ukey_proto::UnitCode;

const CODE: &str = "简码";
const EXAMINEE_NAMES: &[&str] = &["单位简称", "单位", "单位名称"];
const PATH: &str = "隶属关系";
const ORG: &str = "党组织名称";
const ADMIN: &str = "管理员姓名";
const PHONE: &str = "联系电话";
/// The export's columns, in order.
pub const EXPORT_HEADER: &[&str] = &[
    "简码",
    "党组织名称",
    "简称",
    "类别",
    "上级简码",
    "考核对象",
    "联系人",
    "联系电话",
];

pub(super) fn detect(header: &[String]) -> Option<Form> {
    let has = |name: &str| header.iter().any(|h| h == name);
    if EXPORT_HEADER.iter().all(|h| has(h)) {
        Some(Form::UnitExport)
    } else if has(PATH) && has(ORG) {
        Some(Form::Purchase)
    } else if has(CODE) && EXAMINEE_NAMES.iter().any(|n| has(n)) {
        Some(Form::Examinees)
    } else {
        None
    }
}

/// The units known so far: those stored and those planned earlier in the file.
pub(super) struct Known {
    /// code → (name, short name, parent code)
    units: HashMap<String, (String, Option<String>, Option<String>)>,
    children: HashMap<Option<String>, Vec<String>>,
}

impl Known {
    pub(super) fn new(existing: &[Unit]) -> Known {
        let mut known = Known {
            units: HashMap::new(),
            children: HashMap::new(),
        };
        for u in existing {
            known.add(
                u.code.as_str(),
                &u.name,
                u.short_name.clone(),
                u.parent_code.as_ref().map(|p| p.as_str()),
            );
        }
        known
    }

    fn add(&mut self, code: &str, name: &str, short: Option<String>, parent: Option<&str>) {
        self.units.insert(
            code.to_owned(),
            (name.to_owned(), short, parent.map(str::to_owned)),
        );
        self.children
            .entry(parent.map(str::to_owned))
            .or_default()
            .push(code.to_owned());
    }

    pub(super) fn exists(&self, code: &UnitCode) -> bool {
        self.units.contains_key(code.as_str())
    }

    fn named(&self, code: &str, name: &str) -> bool {
        self.units
            .get(code)
            .is_some_and(|(n, s, _)| n == name || s.as_deref() == Some(name))
    }

    /// Units named `name` (full or short name) below `parent`, or anywhere when `parent` is
    /// `None` and `anywhere` is set.
    fn find(&self, parent: Option<&str>, name: &str, anywhere: bool) -> Vec<String> {
        if anywhere {
            let mut all: Vec<String> = self
                .units
                .keys()
                .filter(|c| self.named(c, name))
                .cloned()
                .collect();
            all.sort();
            return all;
        }
        self.children
            .get(&parent.map(str::to_owned))
            .map(|kids| {
                kids.iter()
                    .filter(|c| self.named(c, name))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A free code for a new child of `parent`: `<parent>-<n>`.
    fn fresh_code(&self, parent: &str) -> Option<UnitCode> {
        (1..100_000)
            .map(|n| format!("{parent}-{n}"))
            .find(|c| !self.units.contains_key(c))
            .and_then(|c| UnitCode::parse(&c).ok())
    }
}

struct Columns<'a> {
    header: &'a [String],
}

impl Columns<'_> {
    fn index(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    fn get<'r>(&self, row: &'r Row, name: &str) -> &'r str {
        self.index(name)
            .and_then(|i| row.cells.get(i))
            .map(String::as_str)
            .unwrap_or("")
    }
}

fn problem(row: &Row, column: &str, reason: impl Into<String>) -> RowProblem {
    RowProblem {
        line: row.line,
        column: column.to_owned(),
        reason: reason.into(),
    }
}

fn finish(plan: Plan, problems: Vec<RowProblem>) -> Result<Plan, ImportError> {
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(ImportError::BadRows(problems))
    }
}

pub(super) fn examinees(
    header: &[String],
    rows: &[&Row],
    parent: Option<&UnitCode>,
    known: &mut Known,
) -> Result<Plan, ImportError> {
    // The seed's table holds two 简码/单位 pairs side by side; take every pair.
    let pairs: Vec<(usize, usize)> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| *h == CODE)
        .filter_map(|(i, _)| {
            header
                .get(i + 1)
                .filter(|h| EXAMINEE_NAMES.contains(&h.as_str()))
                .map(|_| (i, i + 1))
        })
        .collect();
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in rows {
        for &(ci, ni) in &pairs {
            let raw_code = row.cells.get(ci).map(String::as_str).unwrap_or("");
            let raw_name = row.cells.get(ni).map(String::as_str).unwrap_or("");
            if raw_code.is_empty() && raw_name.is_empty() {
                continue;
            }
            let name_col = &header[ni];
            let code = match UnitCode::parse(raw_code) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(problem(row, CODE, e.to_string()));
                    continue;
                }
            };
            let name = match clean_name(raw_name) {
                Ok(n) => n,
                Err(e) => {
                    problems.push(problem(row, name_col, e.to_string()));
                    continue;
                }
            };
            if let Some(first) = seen.insert(code.to_string(), row.line) {
                problems.push(problem(
                    row,
                    CODE,
                    format!("{code} is listed twice (also on line {first})"),
                ));
                continue;
            }
            if known.exists(&code) {
                let (stored_name, _, stored_parent) = &known.units[code.as_str()];
                if known.named(code.as_str(), &name)
                    && stored_parent.as_deref() == parent.map(UnitCode::as_str)
                {
                    plan.unchanged += 1;
                } else {
                    problems.push(problem(
                        row,
                        CODE,
                        format!("{code} is already the code of {stored_name}"),
                    ));
                }
                continue;
            }
            if !known
                .find(parent.map(UnitCode::as_str), &name, false)
                .is_empty()
            {
                problems.push(problem(
                    row,
                    name_col,
                    format!("a unit named {name} already exists there"),
                ));
                continue;
            }
            known.add(
                code.as_str(),
                &name,
                Some(name.clone()),
                parent.map(UnitCode::as_str),
            );
            plan.units.push(NewUnit {
                code,
                kind: UnitKind::infer_from_name(&name),
                short_name: Some(name.clone()),
                name,
                parent: parent.cloned(),
                examinee: true,
                contact_name: None,
                contact_phone: None,
            });
        }
    }
    finish(plan, problems)
}

/// Splits `重庆市委 - 沙坪坝区委 - 区委党校` into its names.
fn path_names(path: &str) -> Vec<String> {
    path.split(['-', '－', '—', '>', '/'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) fn purchase(
    header: &[String],
    rows: &[&Row],
    known: &mut Known,
    existing_admins: &[Administrator],
) -> Result<Plan, ImportError> {
    let cols = Columns { header };
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for row in rows {
        let before = problems.len();
        let org = match clean_name(cols.get(row, ORG)) {
            Ok(n) => Some(n),
            Err(e) => {
                problems.push(problem(row, ORG, e.to_string()));
                None
            }
        };
        let admin_name = cols.get(row, ADMIN);
        let phone = cols.get(row, PHONE);
        let mobile = match (admin_name.is_empty(), phone.is_empty()) {
            (true, true) => None,
            (false, true) => {
                problems.push(problem(
                    row,
                    PHONE,
                    "an administrator needs a mobile number",
                ));
                None
            }
            (true, false) => {
                problems.push(problem(
                    row,
                    ADMIN,
                    "the mobile number has no administrator name",
                ));
                None
            }
            (false, false) => match Mobile::parse(phone) {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.push(problem(row, PHONE, e.to_string()));
                    None
                }
            },
        };
        let mut names = path_names(cols.get(row, PATH));
        if let Some(org) = &org
            && names.last() == Some(org)
        {
            names.pop();
        }
        let parent = if names.is_empty() {
            problems.push(problem(
                row,
                PATH,
                "empty: the path of the unit's parent is needed",
            ));
            None
        } else {
            resolve(known, &names)
                .map_err(|reason| problems.push(problem(row, PATH, reason)))
                .ok()
        };
        let (Some(org), Some(parent)) = (org, parent) else {
            continue;
        };
        if let Some(first) = seen.insert((parent.clone(), org.clone()), row.line) {
            problems.push(problem(
                row,
                ORG,
                format!("{org} is listed twice under the same parent (also on line {first})"),
            ));
            continue;
        }
        if problems.len() > before {
            continue;
        }
        let unit_code = match known.find(Some(&parent), &org, false).first() {
            Some(existing) => UnitCode::parse(existing).ok(),
            None => {
                let given = cols.get(row, CODE);
                let code = if given.is_empty() {
                    known.fresh_code(&parent)
                } else {
                    match UnitCode::parse(given) {
                        Ok(c) if known.units.contains_key(c.as_str()) => {
                            problems.push(problem(row, CODE, format!("{c} is already taken")));
                            continue;
                        }
                        Ok(c) => Some(c),
                        Err(e) => {
                            problems.push(problem(row, CODE, e.to_string()));
                            continue;
                        }
                    }
                };
                let Some(code) = code else {
                    problems.push(problem(row, ORG, "no free unit code under this parent"));
                    continue;
                };
                known.add(code.as_str(), &org, None, Some(&parent));
                plan.units.push(NewUnit {
                    code: code.clone(),
                    kind: UnitKind::infer_from_name(&org),
                    name: org.clone(),
                    short_name: None,
                    parent: UnitCode::parse(&parent).ok(),
                    examinee: false,
                    contact_name: None,
                    contact_phone: None,
                });
                Some(code)
            }
        };
        if let (Some(unit), Some(mobile)) = (unit_code, mobile) {
            // Importing the same list twice adds no one twice.
            if existing_admins
                .iter()
                .any(|a| a.unit_code == unit && a.name == admin_name && a.mobile == mobile)
            {
                plan.unchanged += 1;
                continue;
            }
            plan.administrators.push(NewAdministrator {
                unit,
                name: admin_name.to_owned(),
                mobile,
            });
        }
    }
    finish(plan, problems)
}

/// Follows a path of names down the tree: the first name may be any unit (full or short name),
/// each next one a child of the previous.
fn resolve(known: &Known, names: &[String]) -> Result<String, String> {
    let mut current: Option<String> = None;
    for (i, name) in names.iter().enumerate() {
        let found = known.find(current.as_deref(), name, i == 0);
        current = match found.as_slice() {
            [one] => Some(one.clone()),
            [] => {
                return Err(match &current {
                    None => format!("no unit named {name}"),
                    Some(p) => format!("no unit named {name} under {}", known.units[p].0),
                });
            }
            many => return Err(format!("{name} is ambiguous: units {}", many.join(", "))),
        };
    }
    current.ok_or_else(|| "empty path".to_owned())
}

pub(super) fn unit_export(
    header: &[String],
    rows: &[&Row],
    known: &mut Known,
) -> Result<Plan, ImportError> {
    let cols = Columns { header };
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for row in rows {
        let before = problems.len();
        let code = UnitCode::parse(cols.get(row, "简码"))
            .map_err(|e| problems.push(problem(row, "简码", e.to_string())))
            .ok();
        let name = clean_name(cols.get(row, "党组织名称"))
            .map_err(|e| problems.push(problem(row, "党组织名称", e.to_string())))
            .ok();
        let kind = UnitKind::parse(cols.get(row, "类别"));
        if kind.is_none() {
            problems.push(problem(
                row,
                "类别",
                format!("unknown kind {:?}", cols.get(row, "类别")),
            ));
        }
        let parent_raw = cols.get(row, "上级简码");
        let parent = if parent_raw.is_empty() {
            None
        } else {
            match UnitCode::parse(parent_raw) {
                Ok(p) if known.exists(&p) => Some(p),
                Ok(p) => {
                    problems.push(problem(
                        row,
                        "上级简码",
                        format!("no unit {p} (parents must come before their children)"),
                    ));
                    None
                }
                Err(e) => {
                    problems.push(problem(row, "上级简码", e.to_string()));
                    None
                }
            }
        };
        let examinee = match cols.get(row, "考核对象") {
            "是" | "yes" | "true" | "1" => true,
            "" | "否" | "no" | "false" | "0" => false,
            other => {
                problems.push(problem(
                    row,
                    "考核对象",
                    format!("{other:?}: write 是 or 否"),
                ));
                false
            }
        };
        let (Some(code), Some(name), Some(kind)) = (code, name, kind) else {
            continue;
        };
        if problems.len() > before {
            continue;
        }
        if !seen.insert(code.to_string()) {
            problems.push(problem(row, "简码", format!("{code} is listed twice")));
            continue;
        }
        if known.exists(&code) {
            if known.named(code.as_str(), &name) {
                plan.unchanged += 1;
            } else {
                problems.push(problem(
                    row,
                    "简码",
                    format!(
                        "{code} is already the code of {}",
                        known.units[code.as_str()].0
                    ),
                ));
            }
            continue;
        }
        let short = Some(cols.get(row, "简称").to_owned()).filter(|s| !s.is_empty());
        known.add(
            code.as_str(),
            &name,
            short.clone(),
            parent.as_ref().map(UnitCode::as_str),
        );
        let opt = |c: &str| Some(cols.get(row, c).to_owned()).filter(|s| !s.is_empty());
        plan.units.push(NewUnit {
            code,
            name,
            short_name: short,
            kind,
            parent,
            examinee,
            contact_name: opt("联系人"),
            contact_phone: opt("联系电话"),
        });
    }
    finish(plan, problems)
}
