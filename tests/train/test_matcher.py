"""Sound matchers: trained on random settings of a patch, shipped as weights + JSON, run in
NumPy; their proposal seeds CMA-ES. Real engine renders throughout."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.audio.soundfont import soundfont_available
from musicgym.envs.matcher_model import OOD_NEIGHBOURS, Matcher, builtin_presets
from musicgym.errors import ConfigError, UsageError
from musicgym.train.match import match_target, synthetic_targets
from musicgym.train.matcher import (
    finetune_matcher,
    patch_spec,
    save_matcher,
    search_labels,
    soundfont_oneshots,
    synthetic_dataset,
    train_matcher,
)


def _synthetic_targets(preset: str, n: int, seed: int):
    """n clips of the preset's patch at known actions (drawn apart from any training seed)."""
    return synthetic_targets(patch_spec(preset), n, seed=seed, limit=0.9)


def test_a_small_matcher_learns_the_kick_and_round_trips_through_its_files(tmp_path):
    spec = patch_spec("Kick-v0")
    matcher = train_matcher(spec, examples=1000, epochs=12, seed=3, log=lambda _: None)
    base = save_matcher(matcher, tmp_path / "kick")
    loaded = Matcher.load(base.with_suffix(".npz"))
    assert loaded.meta["seed"] == 3 and loaded.meta["preset"] == "Kick-v0"
    x, y = synthetic_dataset(spec, 200, seed=99)
    proposed = loaded.forward(x)
    np.testing.assert_allclose(proposed, matcher.forward(x), atol=1e-6)
    # it has learnt something: far better than always answering the centre
    assert np.abs(proposed - y).mean() < 0.6 * np.abs(y).mean()


def test_the_builtin_matchers_name_known_settings_of_their_patch():
    # every preset has one (BassLine-v0's, a sequencer's: tests/train/test_matcher_steps.py)
    assert {"Kick-v0", "Snare-v0", "FMTone-v0", "BassLine-v0"} == set(builtin_presets())
    for preset in ("Kick-v0", "Snare-v0", "FMTone-v0"):
        matcher = Matcher.builtin(preset)
        actions, audio = _synthetic_targets(preset, 32, seed=12345)
        error = np.abs(matcher.propose(audio) - actions)
        assert np.median(error) < 0.1, (preset, np.median(error))


def test_a_sound_unlike_the_patch_gets_the_median_settings_of_its_nearest_training_sounds():
    matcher = Matcher.builtin("Kick-v0")
    t = np.arange(22050) / 44100
    square = (0.8 * np.sign(np.sin(2 * np.pi * 2000 * t))).astype(np.float32)[None]
    features = matcher.features(square)
    near, dist = matcher.nearest(features)
    assert dist[0] > matcher.meta["ood_threshold"]
    # by hand: the k nearest codebook sounds, each setting's median
    h = (features - matcher.mean) / matcher.std
    z = (h - matcher.pca_mean) @ matcher.pca
    order = np.argsort(((z - matcher.codebook) ** 2).sum(1))
    np.testing.assert_array_equal(near[0], matcher.codebook_actions[order[0]])
    # without ood_neighbours in the sidecar (Kick-v0's): the nearest sound's settings
    assert "ood_neighbours" not in matcher.meta and OOD_NEIGHBOURS == 1
    np.testing.assert_array_equal(matcher.propose(square), near)
    # the built-in Snare-v0 sets 8: each setting's median over the 8 nearest
    assert Matcher.builtin("Snare-v0").meta["ood_neighbours"] == 8
    matcher.meta["ood_neighbours"] = 8
    expected = np.median(matcher.codebook_actions[order[:8]], axis=0)
    np.testing.assert_allclose(matcher.propose(square)[0], expected, atol=1e-6)
    # the patch's own sounds mostly stay with the net (the threshold: 90 % of them)
    _, audio = _synthetic_targets("Kick-v0", 32, seed=4)
    assert (matcher.nearest(matcher.features(audio))[1] <= matcher.meta["ood_threshold"]).mean() \
        > 0.7


def test_policy_plus_cmaes_is_never_worse_than_the_policy_it_starts_from():
    spec = patch_spec("Kick-v0")
    matcher = Matcher.builtin("Kick-v0")
    _, audio = _synthetic_targets("Kick-v0", 1, seed=7)
    alone = match_target(spec, audio[0], "policy", matcher=matcher)
    hybrid = match_target(spec, audio[0], "policy+cmaes", budget=24, matcher=matcher)
    assert alone["evaluations"] == 1 and hybrid["evaluations"] == 24
    assert hybrid["mrstft"] <= alone["mrstft"] + 1e-6
    assert hybrid["clip"].shape == hybrid["target_clip"].shape == (22050,)


def test_clear_errors_for_what_a_matcher_cannot_do(tmp_path):
    with pytest.raises(ConfigError, match="unknown sound-matching preset"):
        patch_spec("Nope-v0")
    with pytest.raises(ConfigError, match="no built-in matcher"):
        Matcher.builtin("Plate-v0")
    with pytest.raises(ConfigError, match="no such matcher file"):
        Matcher.load(tmp_path / "missing")
    with pytest.raises(UsageError, match="needs a matcher"):
        match_target(patch_spec("Kick-v0"), np.zeros(100, np.float32), "policy")


def test_refine_is_an_episode_that_hears_its_sound_and_gets_closer_than_the_proposal():
    """The refinement episode (K renders) on sounds of the patch it never trained on: it ends
    nearer the true settings than the one-pass proposal and is never worse than it."""
    spec = patch_spec("Snare-v0")
    matcher = Matcher.builtin("Snare-v0")
    actions, audio = _synthetic_targets("Snare-v0", 4, seed=2024)
    one, refined = [], []
    for truth, clip in zip(actions, audio, strict=True):
        alone = match_target(spec, clip, "policy", matcher=matcher)
        r = match_target(spec, clip, "refine", budget=10, matcher=matcher)
        assert r["evaluations"] == 10
        assert r["mrstft"] <= alone["mrstft"] + 1e-6
        one.append(np.abs(alone["actions"] - truth).mean())
        refined.append(np.abs(r["actions"] - truth).mean())
    assert np.mean(refined) < np.mean(one)


def test_policy_at_k_and_policy_plus_nm_spend_their_budget_and_never_lose_the_proposal():
    spec = patch_spec("Snare-v0")
    matcher = Matcher.builtin("Snare-v0")
    _, audio = _synthetic_targets("Snare-v0", 1, seed=31)
    candidates = matcher.candidates(audio[0], 5)
    assert candidates.shape == (5, matcher.action_dim)
    np.testing.assert_array_equal(candidates[0], matcher.propose(audio[:1])[0])
    assert len(np.unique(candidates, axis=0)) == 5  # no render spent twice on one setting
    matcher.codebook = None  # an older matcher: the proposal is its only guess
    assert matcher.candidates(audio[0], 5).shape == (1, matcher.action_dim)
    matcher = Matcher.builtin("Snare-v0")
    alone = match_target(spec, audio[0], "policy", matcher=matcher)
    at_k = match_target(spec, audio[0], "policy@k", budget=5, matcher=matcher)
    nm = match_target(spec, audio[0], "policy+nm", budget=40, matcher=matcher)
    assert at_k["evaluations"] == 5 and nm["evaluations"] <= 40
    assert nm["mrstft"] <= at_k["mrstft"] + 1e-6 <= alone["mrstft"] + 2e-6
    with pytest.raises(UsageError, match="needs a matcher"):
        match_target(spec, audio[0], "refine")


def test_a_setting_is_rendered_once_and_the_simplex_follows_the_guesses_spread():
    from musicgym.envs.matching import MatchCore
    from musicgym.train.match import Evaluations, env_kwargs, guesses_spread

    spec = patch_spec("Snare-v0")
    _, audio = _synthetic_targets("Snare-v0", 1, seed=32)
    evaluate = Evaluations(MatchCore(**env_kwargs(spec, audio[0])))
    a = np.array([[0.1] * 6, [0.2] * 6, [0.1] * 6])
    costs, clips = evaluate(a)
    assert evaluate.count == 2 and costs[0] == costs[2] and clips.shape[0] == 3
    again, _ = evaluate(a[1:2])  # already rendered: free, same cost
    assert evaluate.count == 2 and again[0] == costs[1]
    assert evaluate.best_cost == costs.min()
    # each setting's side: its spread over the best guesses, root mean square 1
    guesses = np.array([[0.0, 0.0, 0.0], [0.4, 0.01, 0.0], [0.8, -0.01, 0.0], [1.0, 1.0, 1.0]])
    sides = guesses_spread(guesses, np.array([1.0, 2.0, 3.0, 9.0]), top=3)
    assert sides[0] > sides[1] == sides[2]  # the worst guess (cost 9) is left out
    np.testing.assert_allclose(np.sqrt(np.mean(sides ** 2)), 1.0)
    assert guesses_spread(guesses[:1], np.array([1.0])) is None


@pytest.mark.skipif(not soundfont_available(), reason="no GM SoundFont (Debian's "
                    "timgm6mb-soundfont) to render one-shots with")
def test_learning_from_search_imitates_the_searched_settings_of_soundfont_oneshots(tmp_path):
    spec = patch_spec("Kick-v0")
    clips = soundfont_oneshots(6, seed=5)
    assert clips.shape == (6, 22050)
    peaks = np.abs(clips).max(axis=1)
    assert ((peaks > 0.29) & (peaks <= 1.0)).all()  # normalised, none silent
    np.testing.assert_array_equal(clips, soundfont_oneshots(6, seed=5))  # deterministic
    matcher = Matcher.builtin("Kick-v0")
    labels, costs = search_labels(matcher, spec, clips, budget=30)
    # the search's answer is at least as good as the matcher's proposal, which it tries first
    for clip, cost in zip(clips, costs, strict=True):
        assert cost <= match_target(spec, clip, "policy", matcher=matcher)["mrstft"] + 1e-4
    x, y = synthetic_dataset(spec, 300, seed=1)
    tuned = finetune_matcher(matcher, x, y, matcher.features(clips), labels, epochs=30,
                             lr=1e-3, repeat=20, log=lambda _: None)
    before = np.abs(matcher.forward(matcher.features(clips)) - labels).mean()
    after = np.abs(tuned.forward(tuned.features(clips)) - labels).mean()
    assert after < before  # it moved towards the searched settings
    # the one-shots joined the codebook: each is its own nearest sound, with its label
    assert len(tuned.codebook) == len(matcher.codebook) + len(clips)
    near, _ = tuned.nearest(tuned.features(clips))
    np.testing.assert_allclose(near, labels, atol=2e-3)  # float16 codebook
    loaded = Matcher.load(save_matcher(tuned, tmp_path / "tuned"))
    np.testing.assert_allclose(loaded.propose(clips), tuned.propose(clips), atol=2e-3)
    assert loaded.meta["finetune_examples"] == 6


@pytest.mark.skipif(not soundfont_available(), reason="no GM SoundFont to render one-shots")
def test_the_cli_learns_from_search_from_a_matcher_and_keeps_the_searched_settings(tmp_path):
    from musicgym.envs.matcher_model import BUILTIN_DIR
    from musicgym.train.matcher import main

    labels = tmp_path / "labels.npz"
    args = ["--preset", "Kick-v0", "--init", str(BUILTIN_DIR / "Kick-v0"), "--examples", "200",
            "--distill", "3", "--distill-budget", "20", "--finetune-epochs", "2",
            "--labels", str(labels), "-o", str(tmp_path / "kick")]
    assert main(args) == 0
    first = Matcher.load(tmp_path / "kick")
    assert first.meta["distill"] == 3 and "--init" in first.meta["command"]
    assert first.meta["init_command"] == Matcher.builtin("Kick-v0").meta["command"]
    assert labels.is_file()
    assert main(args) == 0  # the second run reads the searched settings back: same matcher
    again = Matcher.load(tmp_path / "kick")
    np.testing.assert_array_equal(again.layers[0][0], first.layers[0][0])
    with pytest.raises(ConfigError, match="another run"):
        main([*args[:7], "4", *args[8:]])  # 4 one-shots, the file holds 3
    with pytest.raises(ConfigError, match="--distill"):
        main(["--preset", "Kick-v0", "--init", str(BUILTIN_DIR / "Kick-v0"), "-o",
              str(tmp_path / "x")])


@pytest.mark.skipif(not soundfont_available(), reason="no GM SoundFont to render one-shots")
def test_the_cli_learns_from_several_rounds_of_searched_settings(tmp_path):
    from musicgym.envs.matcher_model import BUILTIN_DIR
    from musicgym.train.matcher import main

    base = ["--preset", "Kick-v0", "--init", str(BUILTIN_DIR / "Kick-v0"), "--examples", "200",
            "--distill", "3", "--distill-budget", "20", "--finetune-epochs", "2"]
    first, second = tmp_path / "r1.npz", tmp_path / "r2.npz"
    assert main([*base, "--seed", "0", "--labels", str(first), "-o", str(tmp_path / "a")]) == 0
    assert main([*base, "--seed", "1", "--labels", str(second), "-o", str(tmp_path / "b")]) == 0
    assert main([*base, "--seed", "0", "--labels", str(first), str(second),
                 "-o", str(tmp_path / "both")]) == 0
    one, both = Matcher.load(tmp_path / "a"), Matcher.load(tmp_path / "both")
    assert both.meta["finetune_examples"] == 6  # 3 one-shots of seed 1 and 3 of seed 2
    assert both.meta["distill_more"] == [[3, 2, 20]]
    with np.load(second) as data:
        assert both.meta["distill_more_mean_mrstft"] == [pytest.approx(float(
            data["costs"].mean()))]
    assert len(both.codebook) == len(one.codebook) + 3  # seed 2's joined the codebook
    with pytest.raises(ConfigError, match="twice"):  # seed 1's labels given twice
        main([*base, "--seed", "0", "--labels", str(first), str(first), "-o",
              str(tmp_path / "x")])
    with pytest.raises(ConfigError, match="no such labels file"):
        main([*base, "--seed", "0", "--labels", str(first), str(tmp_path / "none.npz"),
              "-o", str(tmp_path / "x")])


@pytest.mark.skipif(not soundfont_available(), reason="no GM SoundFont to render one-shots")
def test_drum_kit_one_shots_are_finite_normalised_and_leave_the_melodic_ones_as_they_were():
    clips = soundfont_oneshots(6, seed=5)
    np.testing.assert_array_equal(clips, soundfont_oneshots(6, seed=5, kind="melodic"))
    drums = soundfont_oneshots(6, seed=5, kind="drums")
    assert drums.shape == clips.shape and drums.dtype == np.float32
    assert np.isfinite(drums).all()
    peaks = np.abs(drums).max(axis=1)
    assert ((peaks >= 0.3 - 1e-6) & (peaks <= 1 + 1e-6)).all()  # none silent
    np.testing.assert_array_equal(drums, soundfont_oneshots(6, seed=5, kind="drums"))
    assert not np.array_equal(drums, clips)
    mixed = soundfont_oneshots(5, seed=5, kind="mixed")  # 3 melodic, then 2 drums
    np.testing.assert_array_equal(mixed[:3], soundfont_oneshots(3, seed=5))
    np.testing.assert_array_equal(mixed[3:], soundfont_oneshots(2, seed=5, kind="drums"))
    with pytest.raises(ConfigError, match="drums"):
        soundfont_oneshots(2, kind="percussion")


@pytest.mark.skipif(not soundfont_available(), reason="no GM SoundFont to render one-shots")
def test_the_cli_learns_from_drum_kit_one_shots_and_records_their_kind(tmp_path):
    from musicgym.envs.matcher_model import BUILTIN_DIR
    from musicgym.train.matcher import labels_kind, main

    base = ["--preset", "Kick-v0", "--init", str(BUILTIN_DIR / "Kick-v0"), "--examples", "200",
            "--distill", "3", "--distill-budget", "20", "--finetune-epochs", "2"]
    drums, melodic = tmp_path / "drums.npz", tmp_path / "melodic.npz"
    assert main([*base, "--distill-kind", "drums", "--labels", str(drums),
                 "-o", str(tmp_path / "d")]) == 0
    tuned = Matcher.load(tmp_path / "d")
    assert tuned.meta["distill_kind"] == "drums" and "--distill-kind drums" in \
        tuned.meta["command"]
    assert labels_kind(drums) == "drums"
    with pytest.raises(ConfigError, match="another run"):  # drum labels, melodic one-shots
        main([*base, "--labels", str(drums), "-o", str(tmp_path / "x")])
    assert main([*base, "--labels", str(melodic), "-o", str(tmp_path / "m")]) == 0
    assert labels_kind(melodic) == "melodic" and "distill_kind" not in \
        Matcher.load(tmp_path / "m").meta
    # the same seed, another kind: other one-shots, learnt from together
    assert main([*base, "--distill-kind", "drums", "--labels", str(drums), str(melodic),
                 "-o", str(tmp_path / "both")]) == 0
    both = Matcher.load(tmp_path / "both")
    assert both.meta["finetune_examples"] == 6 and both.meta["distill_more"] == [[3, 1, 20]]
    with pytest.raises(ConfigError, match="twice"):
        main([*base, "--distill-kind", "drums", "--labels", str(drums), str(drums),
              "-o", str(tmp_path / "x")])
    bad = tmp_path / "bad.npz"
    with np.load(drums) as data:
        np.savez(bad, **{k: data[k] for k in ("key", "actions", "costs")},
                 kind=np.array("cowbells"))
    with pytest.raises(ConfigError, match="not one of"):
        labels_kind(bad)


def _net_distance(matcher, spec, clips):
    """Mean MR-STFT of the net's own guess (no codebook) rendered, to each clip."""
    from musicgym.audio.distances import make_distance
    from musicgym.envs.spaces import ParameterMap
    from musicgym.synth import Patch

    actions = matcher.forward(matcher.features(clips))
    patch = Patch(spec["code"])
    pmap = ParameterMap(spec["action_space"], n_holes=patch.n_params, flat=True)
    audio = patch.render(pmap.params(actions, len(actions)), n_samples=clips.shape[1],
                         progress=False)[:, 0]
    dist = make_distance("mrstft", sr=44100)
    return float(np.mean([dist(a[None], dist.prepare(c))[0] for a, c in
                          zip(audio, clips, strict=True)]))


def test_an_rl_fine_tune_raises_the_perceptual_reward_on_its_training_targets():
    from musicgym.train.matcher_rl import rl_finetune

    spec = patch_spec("Kick-v0")
    matcher = train_matcher(spec, examples=300, epochs=4, seed=1, codebook=256,
                            log=lambda _: None)
    _, clips = _synthetic_targets("Kick-v0", 8, seed=4242)
    before = _net_distance(matcher, spec, clips)
    tuned, curve = rl_finetune(matcher, spec, clips, steps=30, targets=8, samples=8,
                               sigma=0.2, lr=1e-3, synthetic_share=0.0, anchor=0.0, seed=0,
                               progress=False, log=lambda _: None)
    after = _net_distance(tuned, spec, clips)
    assert after < before - 0.05, (before, after)
    assert len(curve) == 30 and curve[0]["recorded_reward"] is not None
    assert tuned.meta["rl_steps"] == 30 and tuned.meta["rl_recorded_targets"] == 8
    # the standardisation and the codebook are kept; only the net moved
    np.testing.assert_array_equal(tuned.mean, matcher.mean)
    np.testing.assert_array_equal(tuned.codebook, matcher.codebook)
    assert not np.array_equal(tuned.layers[0][0], matcher.layers[0][0])


def test_bad_rl_fine_tune_options_are_refused(tmp_path):
    from musicgym.train.matcher import main
    from musicgym.train.matcher_rl import rl_finetune

    spec, matcher = patch_spec("Kick-v0"), Matcher.builtin("Kick-v0")
    clips = np.zeros((2, 100), np.float32)
    for kwargs, match in (({"samples": 1}, "samples"), ({"steps": 0}, "steps"),
                          ({"sigma": 0.0}, "sigma"), ({"synthetic_share": 1.5}, "share"),
                          ({"lr": float("nan")}, "lr")):
        with pytest.raises(ConfigError, match=match):
            rl_finetune(matcher, spec, clips, progress=False, **kwargs)
    with pytest.raises(ConfigError, match="clips"):
        rl_finetune(matcher, spec, np.zeros(100, np.float32), progress=False)
    with pytest.raises(ConfigError, match="rl-finetune"):
        main(["--preset", "Kick-v0", "--rl-finetune", "-3", "-o", str(tmp_path / "x")])


def test_the_cli_rl_fine_tunes_a_matcher_and_writes_its_learning_curve(tmp_path):
    from musicgym.envs.matcher_model import BUILTIN_DIR
    from musicgym.train.matcher import main

    assert main(["--preset", "Kick-v0", "--init", str(BUILTIN_DIR / "Kick-v0"),
                 "--rl-finetune", "3", "--rl-oneshots", "0", "--rl-targets", "4",
                 "--rl-samples", "2", "--seed", "2", "-o", str(tmp_path / "kick")]) == 0
    tuned = Matcher.load(tmp_path / "kick")
    assert tuned.meta["rl_steps"] == 3 and tuned.meta["rl_seed"] == 2
    assert "--rl-finetune" in tuned.meta["command"]
    assert tuned.meta["init_command"] == Matcher.builtin("Kick-v0").meta["command"]
    lines = (tmp_path / "kick.rl_curve.csv").read_text().splitlines()
    assert lines[0].startswith("update,mean_reward") and len(lines) == 4
    assert all(float(line.split(",")[1]) < 0 for line in lines[1:])  # -MR-STFT


def test_a_bad_labels_file_is_refused_before_anything_is_rendered(tmp_path):
    """--labels files come from others too: each malformed kind raises ConfigError, naming
    the file, and a good one reads back as written."""
    from musicgym.train.matcher import MAX_LABELS, read_labels

    good = tmp_path / "good.npz"
    actions = np.linspace(-1, 1, 12, dtype=np.float32).reshape(2, 6)
    np.savez(good, key=np.array([2, 3, 100]), actions=actions,
             costs=np.array([1.5, 2.0], np.float32))
    key, read, costs = read_labels(good, 6)
    assert key == [2, 3, 100] and np.array_equal(read, actions) and costs.tolist() == [1.5, 2.0]

    def write(name, **arrays):
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    ok = {"key": np.array([2, 3, 100]), "actions": actions, "costs": np.ones(2, np.float32)}
    text = tmp_path / "text.npz"
    text.write_text("not an npz")
    single = tmp_path / "single.npy"
    np.save(single, actions)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, key=np.array([2, 3, 100]), actions=np.array([{"a": 1}], dtype=object),
             costs=np.ones(2))
    cases = {
        text: "not a labels file",
        single: "a single array",
        write("missing.npz", key=ok["key"], actions=actions): "no costs",
        pickled: "unreadable",
        write("key.npz", **{**ok, "key": np.array([2.0, 3.0, 100.0])}): "3 whole numbers",
        write("n.npz", **{**ok, "key": np.array([MAX_LABELS + 1, 3, 100])}): "out of range",
        write("shape.npz", **{**ok, "actions": actions[:, :5]}): r"actions must be \(2, 6\)",
        write("range.npz", **{**ok, "actions": actions * 2}): r"\[-1, 1\]",
        write("nan.npz", **{**ok, "costs": np.array([1.0, np.nan], np.float32)}): "finite",
    }
    for path, message in cases.items():
        with pytest.raises(ConfigError, match=message) as caught:
            read_labels(path, 6)
        assert str(path) in str(caught.value)


def test_a_labels_file_too_large_is_refused_unread(tmp_path, monkeypatch):
    """An array larger than a labels file of MAX_LABELS one-shots holds (e.g. a zip bomb)
    is refused from its size in the archive, before it is decompressed."""
    import musicgym.train.matcher as matcher_module

    path = tmp_path / "big.npz"
    np.savez_compressed(path, key=np.array([2, 3, 100]), actions=np.zeros((2, 6), np.float32),
                        costs=np.ones(2, np.float32))
    monkeypatch.setattr(matcher_module, "_LABELS_MEMBER_BYTES", 40)
    with pytest.raises(ConfigError, match="bytes, more than"):
        matcher_module.read_labels(path, 6)
