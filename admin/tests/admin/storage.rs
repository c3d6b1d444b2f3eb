//! The storage suite: every case runs on SQLite and on PostgreSQL.

use crate::support::{audited, code, new_token, new_unit, serial, t0, test_key};
use futures::TryStreamExt;
use std::sync::Arc;
use time::Duration;
use ukey_admin::domain::{
    LoginKind, LoginOutcome, LoginWrite, Mobile, NewAdministrator, NewSession, TokenChange,
    TokenStatus, UnitKind,
};
use ukey_admin::storage::{LoginQuery, Storage, StorageError, TokenFilter};
use ukey_proto::api::Refusal;
use ukey_testkit::TestPki;
use uuid::Uuid;

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = crate::support::Store::sqlite().await;
                    super::$case(store.storage.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = crate::support::Store::postgres().await;
                    super::$case(store.storage.clone()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    units_form_a_tree_and_a_subtree_is_every_unit_below,
    moving_a_unit_carries_its_subtree_and_never_makes_a_cycle,
    administrators_are_listed_by_subtree,
    a_bound_token_moves_to_another_unit_only_by_an_explicit_rebind,
    a_unit_holds_two_tokens,
    a_token_is_registered_once_by_serial_and_once_by_key,
    the_state_of_every_token_at_a_past_instant_comes_from_its_history,
    the_credential_lookup_sees_a_status_change_at_once,
    logins_and_sessions_are_recorded_and_read_back_by_month_and_subtree,
    a_login_export_is_one_snapshot_while_logins_keep_arriving,
    an_import_stores_everything_or_nothing,
);

async fn tree(s: &Arc<dyn Storage>) {
    s.insert_unit(
        &new_unit("D", "涪陵区委", UnitKind::Committee, None),
        t0(),
        audited(),
    )
    .await
    .unwrap();
    for (c, name, kind, parent) in [
        ("01", "李渡街道党工委", UnitKind::WorkingCommittee, "D"),
        ("02", "敦仁街道党工委", UnitKind::WorkingCommittee, "D"),
        ("01-1", "李渡街道机关党总支", UnitKind::GeneralBranch, "01"),
        ("01-1-1", "第一党支部", UnitKind::Branch, "01-1"),
        ("01-2", "第二党支部", UnitKind::Branch, "01"),
    ] {
        s.insert_unit(&new_unit(c, name, kind, Some(parent)), t0(), audited())
            .await
            .unwrap();
    }
}

fn codes(units: &[ukey_admin::domain::Unit]) -> Vec<&str> {
    units.iter().map(|u| u.code.as_str()).collect()
}

async fn units_form_a_tree_and_a_subtree_is_every_unit_below(s: Arc<dyn Storage>) {
    tree(&s).await;
    let all = s.units(None).await.unwrap();
    assert_eq!(all.len(), 6);
    let under = s.units(Some(&code("01"))).await.unwrap();
    assert_eq!(codes(&under), ["01", "01-1", "01-1-1", "01-2"]);
    let leaf = s.unit(&code("01-1-1")).await.unwrap().unwrap();
    assert_eq!(leaf.depth, 3);
    assert_eq!(leaf.parent_code, Some(code("01-1")));
    assert_eq!(leaf.kind, UnitKind::Branch);

    let dup_code = s
        .insert_unit(
            &new_unit("01", "别的名字", UnitKind::Branch, Some("D")),
            t0(),
            audited(),
        )
        .await;
    assert!(
        matches!(dup_code, Err(StorageError::DuplicateUnitCode(_))),
        "{dup_code:?}"
    );
    let dup_name = s
        .insert_unit(
            &new_unit("03", "李渡街道党工委", UnitKind::Branch, Some("D")),
            t0(),
            audited(),
        )
        .await;
    assert!(
        matches!(dup_name, Err(StorageError::DuplicateUnitName { .. })),
        "{dup_name:?}"
    );
    // The same name under another parent is another unit.
    s.insert_unit(
        &new_unit("02-1", "第二党支部", UnitKind::Branch, Some("02")),
        t0(),
        audited(),
    )
    .await
    .unwrap();
    let orphan = s
        .insert_unit(
            &new_unit("04", "某支部", UnitKind::Branch, Some("nowhere")),
            t0(),
            audited(),
        )
        .await;
    assert!(
        matches!(orphan, Err(StorageError::UnknownUnit(_))),
        "{orphan:?}"
    );
}

async fn moving_a_unit_carries_its_subtree_and_never_makes_a_cycle(s: Arc<dyn Storage>) {
    tree(&s).await;
    let moved = s
        .move_unit(&code("01-1"), Some(&code("02")), t0(), audited())
        .await
        .unwrap();
    assert_eq!(moved.parent_code, Some(code("02")));
    assert_eq!(
        codes(&s.units(Some(&code("02"))).await.unwrap()),
        ["02", "01-1", "01-1-1"]
    );
    assert_eq!(
        codes(&s.units(Some(&code("01"))).await.unwrap()),
        ["01", "01-2"]
    );
    assert_eq!(s.unit(&code("01-1-1")).await.unwrap().unwrap().depth, 3);

    for (unit, parent) in [("02", "01-1-1"), ("02", "02")] {
        let cycle = s
            .move_unit(&code(unit), Some(&code(parent)), t0(), audited())
            .await;
        assert!(
            matches!(cycle, Err(StorageError::Cycle { .. })),
            "{cycle:?}"
        );
    }
    let top = s
        .move_unit(&code("01-1"), None, t0(), audited())
        .await
        .unwrap();
    assert_eq!((top.depth, top.parent_code), (0, None));
    assert_eq!(s.unit(&code("01-1-1")).await.unwrap().unwrap().depth, 1);
}

async fn administrators_are_listed_by_subtree(s: Arc<dyn Storage>) {
    tree(&s).await;
    for (unit, name, mobile) in [
        ("01-1", "张三", "13812345678"),
        ("02", "李四", "13987654321"),
    ] {
        s.insert_administrator(
            &NewAdministrator {
                unit: code(unit),
                name: name.into(),
                mobile: Mobile::parse(mobile).unwrap(),
            },
            t0(),
            audited(),
        )
        .await
        .unwrap();
    }
    let under = s.administrators(Some(&code("01"))).await.unwrap();
    assert_eq!(under.len(), 1);
    assert_eq!(under[0].name, "张三");
    assert_eq!(under[0].unit_code, code("01-1"));
    assert_eq!(s.administrators(None).await.unwrap().len(), 2);
}

async fn a_bound_token_moves_to_another_unit_only_by_an_explicit_rebind(s: Arc<dyn Storage>) {
    tree(&s).await;
    let pki = TestPki::new();
    let (token, _) = new_token(&pki, "01", "T1");
    let t = s
        .register_token(
            &token,
            Some(&code("01")),
            "cli:test",
            "new key",
            t0(),
            audited(),
        )
        .await
        .unwrap();
    assert_eq!(t.status, TokenStatus::Active);
    assert_eq!(t.unit_code, Some(code("01")));

    let taken = s
        .change_token(
            &serial("T1"),
            &TokenChange::Bind(code("02")),
            "cli:test",
            "grab",
            t0(),
            audited(),
        )
        .await;
    assert!(
        matches!(
            taken,
            Err(StorageError::Transition(
                ukey_admin::domain::TransitionError::AlreadyBound { .. }
            ))
        ),
        "{taken:?}"
    );
    assert_eq!(
        s.token(&serial("T1")).await.unwrap().unwrap().unit_code,
        Some(code("01"))
    );

    let moved = s
        .change_token(
            &serial("T1"),
            &TokenChange::Rebind(code("02")),
            "cli:test",
            "unit merged",
            t0(),
            audited(),
        )
        .await
        .unwrap();
    assert_eq!(moved.unit_code, Some(code("02")));
    let history = s.token_history(&serial("T1")).await.unwrap();
    let kinds: Vec<_> = history.iter().map(|e| e.kind.code()).collect();
    assert_eq!(kinds, ["registered", "bound", "rebound"]);
    assert_eq!(history[2].reason, "unit merged");
    assert_eq!(history[2].unit_code, Some(code("02")));
}

async fn a_unit_holds_two_tokens(s: Arc<dyn Storage>) {
    tree(&s).await;
    let pki = TestPki::new();
    for sn in ["T1", "T2"] {
        let (token, _) = new_token(&pki, "01-2", sn);
        s.register_token(&token, None, "cli:test", "delivered", t0(), audited())
            .await
            .unwrap();
        let t = s
            .change_token(
                &serial(sn),
                &TokenChange::Bind(code("01-2")),
                "cli:test",
                "issued",
                t0(),
                audited(),
            )
            .await
            .unwrap();
        assert_eq!(t.status, TokenStatus::Active);
    }
    let filter = TokenFilter {
        under: Some(code("01-2")),
        status: Some(TokenStatus::Active),
    };
    let held: Vec<_> = s
        .tokens(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.serial.to_string())
        .collect();
    assert_eq!(held, ["T1", "T2"]);
    assert_eq!(
        s.tokens(&TokenFilter {
            under: Some(code("01")),
            status: None
        })
        .await
        .unwrap()
        .len(),
        2
    );
    assert!(
        s.tokens(&TokenFilter {
            under: Some(code("02")),
            status: None
        })
        .await
        .unwrap()
        .is_empty()
    );
}

async fn a_token_is_registered_once_by_serial_and_once_by_key(s: Arc<dyn Storage>) {
    tree(&s).await;
    let pki = TestPki::new();
    let (token, _) = new_token(&pki, "01", "T1");
    s.register_token(&token, None, "cli:test", "r", t0(), audited())
        .await
        .unwrap();
    let (other, _) = new_token(&pki, "01", "T1");
    let again = s
        .register_token(&other, None, "cli:test", "r", t0(), audited())
        .await;
    assert!(
        matches!(again, Err(StorageError::DuplicateSerial(_))),
        "{again:?}"
    );
    let mut same_key = token.clone();
    same_key.serial = serial("T9");
    let copy = s
        .register_token(&same_key, None, "cli:test", "r", t0(), audited())
        .await;
    assert!(
        matches!(copy, Err(StorageError::DuplicateFingerprint(ref s)) if s.as_str() == "T1"),
        "{copy:?}"
    );
    let unknown = s
        .change_token(
            &serial("nope"),
            &TokenChange::Suspend,
            "cli:test",
            "r",
            t0(),
            audited(),
        )
        .await;
    assert!(
        matches!(unknown, Err(StorageError::UnknownToken(_))),
        "{unknown:?}"
    );
}

async fn the_state_of_every_token_at_a_past_instant_comes_from_its_history(s: Arc<dyn Storage>) {
    tree(&s).await;
    let pki = TestPki::new();
    let month_start = t0() - Duration::days(14);
    for sn in ["T1", "T2"] {
        let (token, _) = new_token(&pki, "01-2", sn);
        s.register_token(
            &token,
            Some(&code("01-2")),
            "cli:test",
            "issued",
            month_start,
            audited(),
        )
        .await
        .unwrap();
    }
    // T1 is revoked mid-month; T2 is suspended and resumed within the month.
    s.change_token(
        &serial("T1"),
        &TokenChange::Revoke { replaced_by: None },
        "cli:test",
        "broken",
        t0(),
        audited(),
    )
    .await
    .unwrap();
    s.change_token(
        &serial("T2"),
        &TokenChange::Suspend,
        "cli:test",
        "audit",
        t0(),
        audited(),
    )
    .await
    .unwrap();
    s.change_token(
        &serial("T2"),
        &TokenChange::Resume,
        "cli:test",
        "cleared",
        t0() + Duration::days(1),
        audited(),
    )
    .await
    .unwrap();

    let state = |states: &[ukey_admin::domain::TokenState], sn: &str| {
        states
            .iter()
            .find(|st| st.serial.as_str() == sn)
            .map(|st| st.status)
    };
    let before = s
        .token_states_at(t0() - Duration::seconds(1), None)
        .await
        .unwrap();
    assert_eq!(state(&before, "T1"), Some(TokenStatus::Active));
    assert_eq!(state(&before, "T2"), Some(TokenStatus::Active));
    let mid = s
        .token_states_at(t0() + Duration::hours(1), None)
        .await
        .unwrap();
    assert_eq!(state(&mid, "T1"), Some(TokenStatus::Revoked));
    assert_eq!(state(&mid, "T2"), Some(TokenStatus::Suspended));
    let month_end = t0() + Duration::days(16);
    let end = s
        .token_states_at(month_end, Some(&code("01")))
        .await
        .unwrap();
    assert_eq!(state(&end, "T1"), Some(TokenStatus::Revoked));
    assert_eq!(state(&end, "T2"), Some(TokenStatus::Active));
    assert!(end.iter().all(|st| st.unit_code == Some(code("01-2"))));
    let earlier = s
        .token_states_at(month_start - Duration::days(1), None)
        .await
        .unwrap();
    assert!(
        earlier.is_empty(),
        "tokens registered later are absent: {earlier:?}"
    );
    assert!(
        s.token_states_at(month_end, Some(&code("02")))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn the_credential_lookup_sees_a_status_change_at_once(s: Arc<dyn Storage>) {
    tree(&s).await;
    let pki = TestPki::new();
    let (token, _) = new_token(&pki, "01", "T1");
    s.register_token(&token, Some(&code("01")), "cli:test", "r", t0(), audited())
        .await
        .unwrap();
    let c = s.credential(&token.fingerprint).await.unwrap().unwrap();
    assert_eq!(
        (c.status, c.unit.as_ref().map(|u| u.code.as_str())),
        (TokenStatus::Active, Some("01"))
    );
    s.change_token(
        &serial("T1"),
        &TokenChange::Suspend,
        "cli:test",
        "r",
        t0(),
        audited(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.credential(&token.fingerprint)
            .await
            .unwrap()
            .unwrap()
            .status,
        TokenStatus::Suspended
    );
    s.set_unit_active(&code("01"), false, t0(), audited())
        .await
        .unwrap();
    assert!(
        !s.credential(&token.fingerprint)
            .await
            .unwrap()
            .unwrap()
            .unit
            .unwrap()
            .active
    );
    let (stranger, _) = new_token(&pki, "01", "T2");
    assert!(s.credential(&stranger.fingerprint).await.unwrap().is_none());
}

fn success(at: time::OffsetDateTime, token_id: i64, unit_id: i64, id: Uuid) -> LoginWrite {
    LoginWrite {
        at,
        kind: LoginKind::Login,
        outcome: LoginOutcome::Success,
        token_id: Some(token_id),
        unit_id: Some(unit_id),
        fingerprint: None,
        claimed_serial: None,
        source: Some("127.0.0.1:5000".parse().unwrap()),
        client_version: Some("ukeyd/0.1.0".into()),
        session: Some(NewSession {
            id,
            expires_at: at + Duration::hours(8),
        }),
        in_session: None,
    }
}

async fn logins_and_sessions_are_recorded_and_read_back_by_month_and_subtree(s: Arc<dyn Storage>) {
    tree(&s).await;
    let pki = TestPki::new();
    let (a, _) = new_token(&pki, "01-1-1", "TA");
    let (b, _) = new_token(&pki, "02", "TB");
    let ta = s
        .register_token(&a, Some(&code("01-1-1")), "cli:test", "r", t0(), audited())
        .await
        .unwrap();
    let tb = s
        .register_token(&b, Some(&code("02")), "cli:test", "r", t0(), audited())
        .await
        .unwrap();
    let (ua, ub) = (ta.unit_id.unwrap(), tb.unit_id.unwrap());
    let jan_last = time::macros::datetime!(2026-01-31 15:59:59 UTC); // 23:59:59 in Shanghai
    let feb_first = time::macros::datetime!(2026-01-31 16:00:00 UTC); // 00:00 in Shanghai
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let refused = LoginWrite {
        at: t0(),
        kind: LoginKind::Login,
        outcome: LoginOutcome::Refused(Refusal::UnknownCertificate),
        token_id: None,
        unit_id: None,
        fingerprint: Some(a.fingerprint),
        claimed_serial: Some("who".into()),
        source: None,
        client_version: None,
        session: None,
        in_session: None,
    };
    s.record_logins(
        &[
            success(t0(), ta.id, ua, ids[0]),
            success(jan_last, tb.id, ub, ids[1]),
            success(feb_first, ta.id, ua, ids[2]),
            refused,
        ],
        &test_key(),
    )
    .await
    .unwrap();

    let session = s.session(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (session.token_serial.as_str(), session.unit_code.as_str()),
        ("TA", "01-1-1")
    );
    assert!(session.is_live(t0()));
    assert!(
        s.end_session(ids[0], t0() + Duration::minutes(5), audited())
            .await
            .unwrap()
    );
    assert!(
        !s.end_session(ids[0], t0() + Duration::minutes(6), audited())
            .await
            .unwrap()
    );
    assert!(
        !s.session(ids[0])
            .await
            .unwrap()
            .unwrap()
            .is_live(t0() + Duration::minutes(7))
    );

    let jan = ukey_admin::domain::Month::parse("2026-01").unwrap();
    let all: Vec<_> = s
        .logins(LoginQuery {
            from: jan.start(),
            to: jan.end(),
            under: None,
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[0].logout_at, Some(t0() + Duration::minutes(5)));
    assert_eq!(all[0].client_version.as_deref(), Some("ukeyd/0.1.0"));
    let refusal = all
        .iter()
        .find(|r| r.outcome != LoginOutcome::Success)
        .unwrap();
    assert_eq!(
        refusal.outcome,
        LoginOutcome::Refused(Refusal::UnknownCertificate)
    );
    assert_eq!(refusal.fingerprint, Some(a.fingerprint));
    let in_01: Vec<_> = s
        .logins(LoginQuery {
            from: jan.start(),
            to: jan.end(),
            under: Some(code("01")),
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(in_01.len(), 1);
    assert_eq!(
        in_01[0].token_serial.as_ref().map(|s| s.as_str()),
        Some("TA")
    );
    let feb = jan.next();
    let in_feb: Vec<_> = s
        .logins(LoginQuery {
            from: feb.start(),
            to: feb.end(),
            under: None,
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(in_feb.len(), 1);
    assert_eq!(in_feb[0].session_id, Some(ids[2]));
}

async fn a_login_export_is_one_snapshot_while_logins_keep_arriving(s: Arc<dyn Storage>) {
    tree(&s).await;
    let pki = TestPki::new();
    let (a, _) = new_token(&pki, "01", "TA");
    let ta = s
        .register_token(&a, Some(&code("01")), "cli:test", "r", t0(), audited())
        .await
        .unwrap();
    let unit = ta.unit_id.unwrap();
    let batch: Vec<_> = (0..2000)
        .map(|i| {
            success(
                t0() + Duration::milliseconds(i),
                ta.id,
                unit,
                Uuid::now_v7(),
            )
        })
        .collect();
    s.record_logins(&batch, &test_key()).await.unwrap();
    let query = LoginQuery {
        from: t0(),
        to: t0() + Duration::days(1),
        under: Some(code("D")),
    };
    let mut stream = s.logins(query.clone());
    let mut seen = 0;
    // Read a little, then insert more logins inside the same range, then read the rest.
    while seen < 10 {
        stream.try_next().await.unwrap().unwrap();
        seen += 1;
    }
    let more: Vec<_> = (0..500)
        .map(|i| {
            success(
                t0() + Duration::milliseconds(i),
                ta.id,
                unit,
                Uuid::now_v7(),
            )
        })
        .collect();
    s.record_logins(&more, &test_key()).await.unwrap();
    while stream.try_next().await.unwrap().is_some() {
        seen += 1;
    }
    assert_eq!(
        seen, 2000,
        "the export saw exactly the records committed when it started"
    );
    let after: Vec<_> = s.logins(query).try_collect().await.unwrap();
    assert_eq!(after.len(), 2500);
}

async fn an_import_stores_everything_or_nothing(s: Arc<dyn Storage>) {
    tree(&s).await;
    let admin = |unit: &str| NewAdministrator {
        unit: code(unit),
        name: "王五".into(),
        mobile: Mobile::parse("13700000000").unwrap(),
    };
    let good = [
        new_unit(
            "03",
            "崇义街道党工委",
            UnitKind::WorkingCommittee,
            Some("D"),
        ),
        new_unit("03-1", "崇义街道第一党支部", UnitKind::Branch, Some("03")),
    ];
    let bad = [
        new_unit(
            "04",
            "荔枝街道党工委",
            UnitKind::WorkingCommittee,
            Some("D"),
        ),
        new_unit("01", "重复的简码", UnitKind::Branch, Some("D")),
    ];
    let failed = s.import(&bad, &[admin("04")], t0(), audited()).await;
    assert!(
        matches!(failed, Err(StorageError::DuplicateUnitCode(_))),
        "{failed:?}"
    );
    assert!(
        s.unit(&code("04")).await.unwrap().is_none(),
        "nothing of a failed import is stored"
    );
    assert!(s.administrators(None).await.unwrap().is_empty());
    s.import(&good, &[admin("03-1")], t0(), audited())
        .await
        .unwrap();
    assert_eq!(
        codes(&s.units(Some(&code("03"))).await.unwrap()),
        ["03", "03-1"]
    );
    assert_eq!(s.administrators(Some(&code("03"))).await.unwrap().len(), 1);
}
