//! test.cpp's workload on the seeded LatencySimulator: every echo comes back once, in
//! order, intact, for both implementations and all three modes.

use hearth_kcp::{Kcp, Profile};
use hearth_kcp_compare::workload::{reference_mode, run_echo};
use hearth_kcp_compare::ReferenceKcp;

#[test]
fn every_mode_delivers_all_echoes_in_order() {
    for profile in [Profile::Default, Profile::Normal, Profile::Fast] {
        let (sender, echoer) = reference_mode(profile);
        for seed in [1, 2, 3] {
            let hearth = run_echo::<Kcp>(&sender, &echoer, seed, 1000)
                .unwrap_or_else(|failure| panic!("hearth {profile:?} seed {seed}: {failure:?}"));
            let reference = run_echo::<ReferenceKcp>(&sender, &echoer, seed, 1000)
                .unwrap_or_else(|failure| panic!("ikcp.c {profile:?} seed {seed}: {failure:?}"));
            assert_eq!(hearth.echoes, 1000);
            assert_eq!(reference.echoes, 1000);
            // The link alone adds 60..124 ms per round trip.
            assert!(
                hearth.avg_rtt_ms >= 60,
                "{profile:?}: implausible {hearth:?}"
            );
        }
    }
}

#[test]
fn reference_settings_reproduce_ikcp_exactly_on_the_lossy_link() {
    // With the improvements off, Hearth must make every decision ikcp.c makes: same
    // datagrams, so the same link draws, so the same figures.
    for profile in [Profile::Default, Profile::Normal, Profile::Fast] {
        let (mut sender, mut echoer) = reference_mode(profile);
        for config in [&mut sender, &mut echoer] {
            config.exact_rto = false;
            config.flush_on_una_advance = false;
            config.immediate_ack = false;
        }
        let hearth = run_echo::<Kcp>(&sender, &echoer, 42, 1000).unwrap();
        let reference = run_echo::<ReferenceKcp>(&sender, &echoer, 42, 1000).unwrap();
        assert_eq!(hearth, reference, "{profile:?}");
    }
}
