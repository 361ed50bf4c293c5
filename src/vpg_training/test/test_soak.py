"""The soak script's small CI variant: real nodes, a few primitives, memory and rate read."""

import json

import pytest
from vpg_training.soak import group_rss_mb, main, Sampler, summarise


def test_group_rss_reads_this_process_group():
    import os
    assert group_rss_mb(os.getpgrp()) > 10.0
    assert group_rss_mb(2 ** 22 + 12345) == 0.0  # no such group


def test_summary_of_hand_made_samples():
    class Runner:
        processes = {}

    sampler = Sampler(Runner())
    sampler.samples = [(0.0, 0, {'sim': 100.0}), (10.0, 5, {'sim': 150.0}),
                       (20.0, 15, {'sim': 160.0}), (30.0, 20, {'sim': 155.0})]
    summary = summarise(sampler, 20, 30.0, {'table clear after 5 actions': 1}, {})
    assert summary['memory']['sim'] == {'after_warmup_mb': 150.0, 'end_mb': 155.0,
                                        'max_mb': 160.0, 'growth_mb': 5.0}
    assert summary['rate_windows'] == [0.5, 1.0, 0.5]
    assert summary['rate_first_window'] == 0.5 and summary['rate_last_window'] == 0.5
    assert [sample['actions'] for sample in summary['samples']] == [0, 5, 15, 20]


@pytest.mark.slow
def test_soak_runs_real_nodes_and_reports_memory_and_rate(tmp_path):
    out = tmp_path / 'soak.json'
    status = main(['--primitives', '12', '--objects', '4', '--sample-every', '4',
                   '--out', str(out)])
    result = json.loads(out.read_text())
    assert status == 0, result
    assert result['error'] is None and result['crashed'] == {}
    assert result['primitives'] >= 12
    assert set(result['memory']) == {'sim', 'heightmap', 'policy', 'executor'}
    for name, memory in result['memory'].items():
        assert 20.0 < memory['end_mb'] < 4000.0, (name, memory)
    assert result['rate_first_window'] > 0 and result['rate_last_window'] > 0
