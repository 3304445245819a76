use http::{HeaderMap, HeaderName, HeaderValue};

use super::scheduler::{Action, Choice, EnvState, Scheduler};
use super::*;

fn t(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

#[test]
fn tenant_ids_follow_aws_rules() {
    for ok in ["a", "tenant-1", "A.b_c:d/e=f+g-h@i j", &"x".repeat(256)] {
        assert!(TenantId::parse(ok).is_ok(), "{ok:?}");
    }
    assert!(TenantId::parse("").unwrap_err().contains("empty"));
    assert!(
        TenantId::parse(&"x".repeat(257))
            .unwrap_err()
            .contains("257")
    );
    for bad in ["a;b", "é", "a\tb", "a\"b", "a,b", "a*"] {
        assert!(TenantId::parse(bad).is_err(), "{bad:?}");
    }
}

fn policy(mode: TenancyMode, header: &str) -> Policy {
    Policy {
        mode,
        header: HeaderName::try_from(header).unwrap(),
        ..Policy::default()
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::try_from(*k).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn the_tenant_header_must_match_the_mode() {
    let none = policy(TenancyMode::None, DEFAULT_HEADER);
    assert_eq!(none.tenant_of(&headers(&[])), Ok(None));
    let err = none
        .tenant_of(&headers(&[("X-Amz-Tenant-Id", "a")]))
        .unwrap_err();
    assert!(err.0.contains("TENANT_ISOLATION_MODE=NONE"), "{err}");
    let per = policy(TenancyMode::PerTenant, DEFAULT_HEADER);
    assert_eq!(
        per.tenant_of(&headers(&[("X-Amz-Tenant-Id", "a b")])),
        Ok(Some(t("a b")))
    );
    assert!(
        per.tenant_of(&headers(&[]))
            .unwrap_err()
            .0
            .contains("needs")
    );
    assert!(per.tenant_of(&headers(&[("x-amz-tenant-id", "")])).is_err());
    assert!(
        per.tenant_of(&headers(&[("x-amz-tenant-id", "a;b")]))
            .is_err()
    );
    let two = headers(&[("x-amz-tenant-id", "a"), ("x-amz-tenant-id", "b")]);
    assert!(per.tenant_of(&two).is_err());
}

#[test]
fn a_custom_header_replaces_the_aws_one() {
    let per = policy(TenancyMode::PerTenant, "x-customer");
    assert_eq!(
        per.tenant_of(&headers(&[("X-Customer", "c1")])),
        Ok(Some(t("c1")))
    );
    assert!(
        per.tenant_of(&headers(&[("X-Amz-Tenant-Id", "c1")]))
            .is_err()
    );
    let none = policy(TenancyMode::None, "x-customer");
    assert!(none.tenant_of(&headers(&[("x-customer", "c1")])).is_err());
    assert_eq!(
        none.tenant_of(&headers(&[("X-Amz-Tenant-Id", "c1")])),
        Ok(None)
    );
}

#[test]
fn default_caps_leave_one_environment_for_others() {
    assert_eq!(Policy::default_caps(1, 1024), (1, 512));
    assert_eq!(Policy::default_caps(4, 1024), (3, 512));
    assert_eq!(Policy::default_caps(2, 1), (1, 1));
}

/// A scheduler of `envs` environments, all polling.
fn sched(envs: usize, cap: usize, share: usize) -> Scheduler<u32> {
    let mut s = Scheduler::new(envs, cap, share);
    for e in 0..envs {
        s.idle(e);
    }
    s
}

fn push(s: &mut Scheduler<u32>, tenant: &str, item: u32) -> Vec<Action> {
    s.push(t(tenant), item, |_| false).unwrap()
}

/// Runs `env`'s invocation to its end: takes it, then polls again.
fn serve(s: &mut Scheduler<u32>, env: usize) -> Option<u32> {
    let item = s.take(env);
    s.idle(env);
    item
}

#[test]
fn a_tenant_lands_on_its_warm_environment() {
    let mut s = sched(2, 2, 10);
    assert_eq!(push(&mut s, "a", 1), vec![Action::Deliver(0)]);
    assert_eq!(serve(&mut s, 0), Some(1));
    assert_eq!(push(&mut s, "a", 2), vec![Action::Deliver(0)]);
    let d = s.take_decided();
    assert_eq!(d[0].choice, Choice::Clean);
    assert_eq!(d[1].choice, Choice::Warm);
}

#[test]
fn another_tenant_takes_a_clean_environment_before_a_used_one() {
    let mut s = sched(2, 2, 10);
    push(&mut s, "a", 1);
    serve(&mut s, 0);
    assert_eq!(push(&mut s, "b", 2), vec![Action::Deliver(1)]);
    assert_eq!(s.tenant_of(1), Some(&t("b")));
}

#[test]
fn a_switch_resets_the_least_recently_used_environment_first() {
    let mut s = sched(2, 2, 10);
    push(&mut s, "a", 1);
    push(&mut s, "b", 2);
    serve(&mut s, 0);
    serve(&mut s, 1);
    // a used env 0 first, so it goes to c, after a reset.
    assert_eq!(push(&mut s, "c", 3), vec![Action::Reset(0)]);
    assert!(s.must_reset(0));
    assert_eq!(s.take(0), None, "nothing before the reset");
    assert_eq!(s.started(0), vec![Action::Deliver(0)]);
    assert_eq!(s.take(0), Some(3));
    assert_eq!(s.tenant_of(0), Some(&t("c")));
    let d = s.take_decided();
    assert_eq!(d[2].choice, Choice::Switch);
    assert_eq!(d[2].previous, Some(t("a")));
}

#[test]
fn an_environment_never_serves_two_tenants_between_resets() {
    let mut s = sched(3, 2, 100);
    let mut served_since_reset: Vec<Option<TenantId>> = vec![None; 3];
    let tenants = ["a", "b", "c", "d", "e"];
    for round in 0..200u32 {
        let tenant = tenants[(round as usize * 7) % tenants.len()];
        for action in push(&mut s, tenant, round) {
            if let Action::Reset(e) = action {
                served_since_reset[e] = None;
                s.started(e);
            }
        }
        for (e, served) in served_since_reset.iter_mut().enumerate() {
            if round % 3 == e as u32
                && let Some(_item) = s.take(e)
            {
                let bound = s.tenant_of(e).cloned();
                let seen = served.get_or_insert(bound.clone().unwrap());
                assert_eq!(
                    Some(seen.clone()),
                    bound,
                    "env {e} changed tenant without a reset"
                );
                s.idle(e);
            }
        }
    }
}

#[test]
fn a_tenant_keeps_at_most_its_cap_busy() {
    let mut s = sched(3, 2, 100);
    for i in 0..5 {
        push(&mut s, "a", i);
    }
    let busy = (0..3)
        .filter(|e| s.state_of(*e) == Some(EnvState::Assigned))
        .count();
    assert_eq!(busy, 2);
    // The third environment is left for another tenant.
    assert_eq!(push(&mut s, "b", 9), vec![Action::Deliver(2)]);
}

#[test]
fn tenants_are_served_round_robin() {
    // One environment: every invocation waits for it; a flood of a, one call of b.
    let mut s = sched(1, 1, 100);
    for i in 0..10 {
        push(&mut s, "a", i);
    }
    push(&mut s, "b", 100);
    let mut order = Vec::new();
    for _ in 0..11 {
        if s.must_reset(0) {
            s.started(0);
        }
        order.push(serve(&mut s, 0).unwrap());
    }
    let b_at = order.iter().position(|i| *i == 100).unwrap();
    assert!(b_at <= 2, "b waited behind the flood: {order:?}");
}

#[test]
fn a_tenant_past_its_share_is_refused_others_are_not() {
    let mut s: Scheduler<u32> = Scheduler::new(1, 1, 2);
    for i in 0..2 {
        s.push(t("a"), i, |_| false).unwrap();
    }
    assert_eq!(s.push(t("a"), 3, |_| false), Err(3));
    assert!(s.push(t("b"), 4, |_| false).is_ok());
    // Dead entries make room.
    assert!(s.push(t("a"), 5, |i| *i == 0).is_ok());
    assert_eq!(s.queued(), 3);
}

#[test]
fn a_crash_unbinds_the_environment_and_frees_the_tenant_slot() {
    let mut s = sched(1, 1, 10);
    push(&mut s, "a", 1);
    s.take(0);
    // The process died while busy: the new one is clean.
    s.started(0);
    assert_eq!(s.tenant_of(0), None);
    s.idle(0);
    assert_eq!(push(&mut s, "b", 2), vec![Action::Deliver(0)]);
    assert_eq!(s.take_decided()[1].choice, Choice::Clean);
}

#[test]
fn stats_are_bounded_and_keep_every_count() {
    let stats = stats::Stats::default();
    for i in 0..(stats::MAX_TRACKED + 10) {
        stats.assigned(&t(&format!("t{i}")), Choice::Clean);
    }
    stats.assigned(&t("t0"), Choice::Warm);
    let mut out = String::new();
    stats.render("n=\"f\"", &mut out, |s| s.to_owned());
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("aws_custom_runtime_tenant_invocations_total{"))
        .collect();
    assert_eq!(rows.len(), stats::TOP + 1, "{out}");
    let total: u64 = rows
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, stats::MAX_TRACKED as u64 + 11);
    assert!(out.contains("tenant=\"t0\"} 2"), "{out}");
    assert!(out.contains("aws_custom_runtime_env_warm_hit_ratio"));
}

#[test]
fn drain_withdraws_every_pending_invocation_and_a_reset_still_happens() {
    let mut s = sched(2, 2, 10);
    push(&mut s, "a", 1);
    push(&mut s, "b", 2);
    serve(&mut s, 0);
    serve(&mut s, 1);
    // c takes env 0 after a reset; d waits in its queue.
    assert_eq!(push(&mut s, "c", 3), vec![Action::Reset(0)]);
    push(&mut s, "b", 4);
    push(&mut s, "d", 5);
    let mut drained = s.drain();
    drained.sort();
    assert_eq!(drained, vec![3, 4, 5]);
    assert_eq!(s.queued(), 0);
    // The switch goes on: env 0 still waits for its reset, then takes nothing.
    assert!(s.must_reset(0));
    s.started(0);
    assert_eq!(s.take(0), None);
    assert_eq!(s.state_of(0), Some(EnvState::Idle));
    assert_eq!(s.tenant_of(0), Some(&t("c")));
    // Every slot was given back: new work flows, b's to its warm environment.
    assert_eq!(push(&mut s, "b", 6), vec![Action::Deliver(1)]);
    assert_eq!(serve(&mut s, 1), Some(6));
    assert_eq!(push(&mut s, "c", 7), vec![Action::Deliver(0)]);
    assert_eq!(serve(&mut s, 0), Some(7));
}
