import shutil
import warnings
import json

import numpy as np
import pytest
import soundfile as sf

from paperlib import core, data
from paperlib.core import ConfigError, DataError
from conftest import write_tone

# ---------------------------------------------------------------- read_audio
def test_read_audio_reads_and_validates(tmp_path):
    y, sr = data.read_audio(write_tone(tmp_path / "a.wav"), sr=8000)
    assert y.dtype == np.float32 and y.shape == (4000,) and sr == 8000
    with pytest.raises(DataError, match="does not exist"):
        data.read_audio(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(DataError, match="could not be decoded"):
        data.read_audio(tmp_path / "bad.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(100), 8000)
    with pytest.raises(DataError, match="silent"):
        data.read_audio(tmp_path / "silent.wav")
    with pytest.raises(DataError, match="16000 Hz was expected"):
        data.read_audio(tmp_path / "a.wav", sr=16000)
    y2, sr2 = data.read_audio(tmp_path / "a.wav", sr=16000, resample=True)
    assert sr2 == 16000 and abs(len(y2) - 8000) <= 1
    write_tone(tmp_path / "st.wav", channels=2)
    with pytest.raises(DataError, match="2 channel"):
        data.read_audio(tmp_path / "st.wav", channels=1)
    assert data.read_audio(tmp_path / "st.wav")[0].ndim == 1
    assert data.read_audio(tmp_path / "st.wav", mono=False)[0].shape[0] == 2
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 10, dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(DataError, match="NaN"):
        data.read_audio(tmp_path / "nan.wav")


# ---------------------------------------------------------------- loaders on fixtures in the published layouts
def _fsdd(root, speakers=("alice", "bob"), digits=range(3), takes=2):
    for s in speakers:
        for d in digits:
            for k in range(takes):
                write_tone(root / "fsdd/recordings" / f"{d}_{s}_{k}.wav", freq=200 + 50 * d, seconds=0.2 + 0.05 * k)
    return root


def test_fsdd_loader_reads_layout_and_metadata(tmp_path):
    _fsdd(tmp_path)
    (tmp_path / "fsdd/metadata.py").write_text("metadata = {'alice': {'gender': 'female'}, 'bob': {'gender': 'male'}}\n")
    clips = data.load_fsdd(tmp_path)
    assert len(clips) == 12 and clips.sr == 8000
    assert sorted(set(clips.labels)) == [0, 1, 2]
    assert set(clips.meta.gender) == {"female", "male"}
    assert len(data.load_fsdd(tmp_path, speakers=["bob"], per_speaker_digit=1)) == 3
    with pytest.raises(ConfigError, match="carol"):
        data.load_fsdd(tmp_path, speakers=["carol"])
    write_tone(tmp_path / "fsdd/recordings/notadigit.wav")
    with pytest.raises(DataError, match="naming"):
        data.load_fsdd(tmp_path)


def test_fsdd_loader_rejects_wrong_rate_and_missing_folder(tmp_path):
    with pytest.raises(DataError, match="fsdd/recordings"):
        data.load_fsdd(tmp_path)
    write_tone(tmp_path / "fsdd/recordings/1_x_0.wav", sr=16000)
    with pytest.raises(DataError, match="1_x_0.wav is at 16000 Hz"):
        data.load_fsdd(tmp_path)


def test_audiomnist_loader(tmp_path):
    for spk in ("01", "02"):
        for d in (0, 1):
            write_tone(tmp_path / f"audiomnist/data/{spk}/{d}_{spk}_0.wav", sr=48000, seconds=0.1)
    (tmp_path / "audiomnist/data/audioMNIST_meta.txt").write_text(json.dumps({"01": {"gender": "male"}, "02": {"gender": "female"}}))
    clips = data.load_audiomnist(tmp_path, sr=8000)
    assert len(clips) == 4 and clips.sr == 8000 and set(clips.meta.gender) == {"male", "female"}
    assert abs(len(clips.audio[0]) - 800) <= 1


def test_nsynth_loader(tmp_path):
    split = tmp_path / "nsynth/nsynth-test"
    ex = {}
    for i, fam in enumerate(["guitar", "flute", "guitar"]):
        key = f"{fam}_acoustic_00{i}-060-100"
        ex[key] = {"note_str": key, "instrument_family_str": fam, "pitch": 60, "velocity": 100, "sample_rate": 16000}
        write_tone(split / "audio" / f"{key}.wav", sr=16000, seconds=1.0)
    (split / "examples.json").write_text(json.dumps(ex))
    clips = data.load_nsynth(tmp_path, n_samples=4000)
    assert len(clips) == 3 and {len(a) for a in clips.audio} == {4000}
    assert list(data.load_nsynth(tmp_path, families=["flute"]).labels) == ["flute"]
    assert len(data.load_nsynth(tmp_path, per_family=1)) == 2


def test_urbansound8k_loader_resamples_and_downmixes(tmp_path):
    base = tmp_path / "urbansound8k/UrbanSound8K"
    write_tone(base / "audio/fold1/100_a.wav", sr=44100, channels=2, seconds=0.5)
    write_tone(base / "audio/fold2/200_b.wav", sr=22050, seconds=0.25)
    (base / "metadata").mkdir(parents=True)
    (base / "metadata/UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "100_a.wav,100,0,0.5,1,1,1,car_horn\n200_b.wav,200,0,0.25,2,2,3,dog_bark\n")
    clips = data.load_urbansound8k(tmp_path, sr=16000)
    assert list(clips.labels) == ["car_horn", "dog_bark"] and clips.sr == 16000
    assert [len(a) for a in clips.audio] == [8000, 4000]
    assert len(data.load_urbansound8k(tmp_path, folds=[2])) == 1


def test_tau2019_loader(tmp_path):
    base = tmp_path / "tau2019"
    write_tone(base / "audio/airport-barcelona-0-0-a.wav", sr=48000, channels=2, seconds=0.2)
    write_tone(base / "audio/park-paris-1-0-a.wav", sr=48000, channels=2, seconds=0.2)
    (base / "meta.csv").write_text("filename\tscene_label\tidentifier\tsource_label\n"
                                   "audio/airport-barcelona-0-0-a.wav\tairport\tbarcelona-0\ta\n"
                                   "audio/park-paris-1-0-a.wav\tpark\tparis-1\ta\n")
    clips = data.load_tau2019(tmp_path, sr=16000)
    assert list(clips.labels) == ["airport", "park"] and clips.audio[0].shape == (3200,)


# ---------------------------------------------------------------- source selection
def test_resolve_source_rules(tmp_path, monkeypatch):
    assert data.resolve_source("spoken_digits", "auto", _fsdd(tmp_path / "with")).name == "fsdd"
    empty = tmp_path / "empty"; empty.mkdir()
    with pytest.raises(DataError, match="not available") as err:
        data.resolve_source("spoken_digits", "fsdd", empty)
    assert str(empty / "fsdd") in str(err.value) and "How to fix" in str(err.value)
    with pytest.raises(ConfigError, match="not a known source") as err:                 # a typo is never 'auto'
        data.resolve_source("spoken_digits", "fsd", empty)
    assert all(name in str(err.value) for name in data.SOURCES)                          # ... and lists the known ones
    with pytest.warns(UserWarning, match="FALLBACK"):                                    # another task's name: this task's auto
        assert data.resolve_source("spoken_digits", "nsynth", empty).name == "numpy-digits"
    assert data.resolve_source("spoken_digits", "gm-nsynth", _fsdd(tmp_path / "with")).name == "fsdd"
    monkeypatch.setattr(core, "_FALLBACKS", [])                           # a fallback is announced once per process
    with pytest.warns(UserWarning, match="FALLBACK"):
        assert data.resolve_source("spoken_digits", "auto", empty).name == "numpy-digits"
    monkeypatch.setenv("PAPERLIB_STRICT", "1")
    with pytest.raises(DataError, match="PAPERLIB_STRICT"):
        data.resolve_source("spoken_digits", "auto", empty)
    assert data.resolve_source("spoken_digits", "numpy-digits", empty).kind == "fallback"   # asked for by name: allowed


@pytest.mark.parametrize("name", list(data.SOURCES))
def test_every_source_is_declared_once_and_resolves(name, tmp_path, monkeypatch):
    src = data.SOURCES[name]
    assert src.kind in data.SOURCE_KINDS and src.description
    assert callable(data._import_path(src.loader))                       # the loader's import path is right
    if src.present is not None: assert callable(data._import_path(src.present))
    monkeypatch.setenv("PAPERLIB_FALLBACKS_ONLY", "1")
    if src.kind in data.HIDDEN_KINDS:                                     # hidden: named, it is an error with the fix
        assert not src.is_present(tmp_path)
        with pytest.raises(DataError, match="not available"):
            data.resolve_source(src.task, name, tmp_path)
    else:                                                                 # simulators and fallbacks always resolve
        assert data.resolve_source(src.task, name, tmp_path) is src
    assert len(src.fingerprint(tmp_path)) == 16
    other = next(t for t in {s.task for s in data.SOURCES.values()} if t != src.task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert data.resolve_source(other, name, tmp_path).task == other   # a name of another task: that task's auto


def test_fingerprints_follow_content_not_paths(tmp_path):
    a = _fsdd(tmp_path / "a"); b = tmp_path / "b"
    shutil.copytree(a, b)
    fsdd = data.SOURCES["fsdd"]
    assert fsdd.fingerprint(a) == fsdd.fingerprint(b)                    # same files elsewhere: same data
    (b / "fsdd/recordings/0_bob_0.wav").unlink()                         # a speaker's file removed
    assert fsdd.fingerprint(a) != fsdd.fingerprint(b)
    assert fsdd.fingerprint(a, mtimes=True) != fsdd.fingerprint(a)        # the cache key also sees modification times
    sim = data.SOURCES["sim-tau"]                                         # a simulator's follows its ingredients
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sim.fingerprint(a) != sim.fingerprint(tmp_path / "empty_root")


def test_machine_sources_names_every_task(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_FALLBACKS_ONLY", "1")
    rec = data.machine_sources(_fsdd(tmp_path))
    assert set(rec) == {s.task for s in data.SOURCES.values()}
    assert rec["spoken_digits"]["source"] == "numpy-digits" and rec["sound_objects"]["source"] == "numpy-sounds"
    monkeypatch.delenv("PAPERLIB_FALLBACKS_ONLY")
    assert data.machine_sources(tmp_path)["spoken_digits"]["source"] == "fsdd"


def test_stereo_downmix_is_said_once_and_resampling_has_a_command_line_switch(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "_SAID", set())
    for k in range(3): write_tone(tmp_path / f"st{k}.wav", channels=2)
    for k in range(3): data.read_audio(tmp_path / f"st{k}.wav")
    assert capsys.readouterr().err.count("down-mixed to mono") == 1
    write_tone(tmp_path / "a.wav", sr=8000)
    with pytest.raises(DataError, match="PAPERLIB_RESAMPLE=1"):
        data.read_audio(tmp_path / "a.wav", sr=16000)
    monkeypatch.setenv("PAPERLIB_RESAMPLE", "1")
    assert data.read_audio(tmp_path / "a.wav", sr=16000)[1] == 16000


def test_load_dataset_records_provenance(tmp_path):
    clips = data.load_dataset("spoken_digits", "fsdd", root=_fsdd(tmp_path))
    assert clips.source["name"] == "fsdd" and clips.source["kind"] == "real" and clips.source["n_clips"] == 12


def test_clips_to_array_and_subset(tmp_path):
    clips = data.load_fsdd(_fsdd(tmp_path))
    arr = clips.to_array(1000)
    assert arr.shape == (12, 1000) and arr.dtype == np.float32
    assert np.array_equal(arr[0], clips.audio[0][:1000])
    centred = data.Clips([np.ones(10, np.float32)], 8000, clips.meta.iloc[:1]).to_array(20, align="center")
    assert centred[0, 5:15].sum() == 10 and centred[0, :5].sum() == 0
    sub = clips.subset(clips.labels == 2)
    assert len(sub) == 4 and set(sub.labels) == {2}
