"""A seeded simulator of wrist acceleration: the built-in default datasets.

Physics, in g, in the sensor frame of a wrist-worn device:
- every activity sets the forearm's orientation (pitch, roll), so gravity shows
  up as a slowly moving 1 g vector; the device measures up-vector + dynamics;
- periodic activities (locomotion, many ADLs) swing the arm at half the step
  cadence and add vertical impacts at the cadence with a few harmonics; postures
  are the zero-amplitude case;
- gestures are smooth templates of orientation and translation bumps, time
  warped per repetition; "close X" replays "open X" backwards.

The activity library is global (templates seeded by name), so datasets that
share activity families share structure a network can transfer. Subjects vary
in device orientation, cadence and amplitude; datasets vary in sampling rate,
units, class vocabulary, noise, a null class and a mounting rotation. Presets
mirror the paper's datasets (rates, subjects, class counts) with durations
scaled down.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from xfer_jax.data.recording import DataError, DatasetSpec, RawDataset, Recording

SIMULATOR_VERSION = 2  # bump when the simulated signals change (part of the cache key)
STANDARD_GRAVITY = 9.80665
FOREARM_M = 0.3  # radius of the arm swing seen at the wrist, metres


@dataclasses.dataclass(frozen=True)
class Periodic:
  """Orientation (rad), arm swing (rad) at cadence/2, impacts (g) at the cadence (Hz)."""

  pitch: float
  roll: float
  cadence: float = 0.0
  swing: float = 0.0
  impact: float = 0.0
  harmonics: tuple[float, ...] = (1.0, 0.5, 0.25)
  roll_swing: float = 0.0
  drift: float = 0.06  # slow orientation wander (rad)


@dataclasses.dataclass(frozen=True)
class Gesture:
  """A template gesture; reverse_of replays another gesture backwards."""

  duration_s: float
  amplitude: float = 1.0
  reverse_of: str | None = None


LIBRARY: dict[str, Periodic | Gesture] = {
    # postures: only the gravity direction (and drift / tremor) tells them apart
    "lie": Periodic(pitch=0.1, roll=1.45),
    "sit": Periodic(pitch=0.15, roll=0.25),
    "stand": Periodic(pitch=-1.35, roll=0.1),
    "kneel": Periodic(pitch=-0.9, roll=0.5, drift=0.12),
    "bend": Periodic(pitch=-1.55, roll=-0.5, drift=0.15),
    # locomotion
    "walk": Periodic(pitch=-1.2, roll=0.1, cadence=1.85, swing=0.45, impact=0.3),
    "run": Periodic(pitch=-0.5, roll=0.2, cadence=2.7, swing=0.7, impact=1.1,
                    harmonics=(1.0, 0.7, 0.4)),
    "stairs_up": Periodic(pitch=-1.15, roll=0.15, cadence=1.55, swing=0.3, impact=0.38,
                          harmonics=(1.0, 0.3, 0.4)),
    "stairs_down": Periodic(pitch=-1.2, roll=0.05, cadence=1.95, swing=0.3, impact=0.5,
                            harmonics=(1.0, 0.8, 0.2)),
    "nordic_walk": Periodic(pitch=-0.95, roll=0.3, cadence=1.75, swing=0.8, impact=0.4),
    "cycle": Periodic(pitch=0.05, roll=0.0, cadence=1.3, swing=0.06, impact=0.08,
                      roll_swing=0.08),
    "rope_jump": Periodic(pitch=-0.8, roll=0.6, cadence=2.2, swing=0.15, impact=1.5,
                          harmonics=(1.0, 0.9, 0.6), roll_swing=0.3),
    # ADLs: quasi-periodic hand movements at their own rate and orientation
    "brush_teeth": Periodic(pitch=0.9, roll=0.6, cadence=4.0, swing=0.12, impact=0.12,
                            roll_swing=0.25),
    "iron": Periodic(pitch=0.2, roll=0.2, cadence=1.6, swing=0.25, impact=0.1),
    "vacuum": Periodic(pitch=-0.5, roll=0.3, cadence=1.1, swing=0.5, impact=0.15),
    "wipe": Periodic(pitch=0.25, roll=-0.3, cadence=2.0, swing=0.3, impact=0.08,
                     roll_swing=0.2),
    "type": Periodic(pitch=0.2, roll=0.1, cadence=5.0, swing=0.02, impact=0.05),
    # gestures (shared by the gesture datasets; "close" mirrors "open")
    "open_door": Gesture(2.6), "close_door": Gesture(2.4, reverse_of="open_door"),
    "open_drawer": Gesture(2.0), "close_drawer": Gesture(1.8, reverse_of="open_drawer"),
    "open_fridge": Gesture(2.8), "close_fridge": Gesture(2.5, reverse_of="open_fridge"),
    "drink": Gesture(3.5, amplitude=0.8), "toggle_switch": Gesture(1.5, amplitude=0.6),
    "clean_table": Gesture(3.8, amplitude=1.2),
    "open_hood": Gesture(3.0, amplitude=1.3), "close_hood": Gesture(2.6, reverse_of="open_hood"),
    "check_gaps": Gesture(3.6, amplitude=0.7), "write_notepad": Gesture(3.2, amplitude=0.5),
    "close_both_doors": Gesture(3.4, amplitude=1.1), "check_trunk": Gesture(3.3, amplitude=0.8),
    "open_close_trunk": Gesture(3.9, amplitude=1.4), "check_wheel": Gesture(2.9, amplitude=0.9),
}


@dataclasses.dataclass(frozen=True)
class Preset:
  """A simulated dataset's domain."""

  rate_hz: float
  num_subjects: int
  classes: tuple[str, ...]
  units: str  # "g", "milli-g" or "m/s^2"
  noise_g: float
  minutes_per_class: float  # per subject
  null: str | None = None  # "kept" or "dropped" when the stream has a null class
  mount_deg: float = 0.0  # the dataset's device mounting rotation
  occurrence_s: tuple[float, float] = (20.0, 60.0)  # length of one periodic bout
  repetitions_per_block: int = 1  # gesture repetitions before the next activity


PRESETS = {
    # OPPORTUNITY-like: 4 subjects, ~30 Hz, milli-g, kitchen gestures plus a kept null class
    "syn_opportunity": Preset(
        rate_hz=30.0, num_subjects=4, units="milli-g", noise_g=0.03, minutes_per_class=1.0,
        classes=("open_door", "close_door", "open_fridge", "close_fridge", "open_drawer",
                 "close_drawer", "drink", "toggle_switch", "clean_table", "wipe", "stand",
                 "walk"),
        null="kept", mount_deg=12.0),
    # Skoda-like: 1 subject, 96 Hz, ten car-checkpoint gestures, null in the stream but dropped
    "syn_skoda": Preset(
        rate_hz=96.0, num_subjects=1, units="g", noise_g=0.02, minutes_per_class=4.0,
        classes=("write_notepad", "open_hood", "close_hood", "check_gaps", "open_door",
                 "close_door", "close_both_doors", "check_trunk", "open_close_trunk",
                 "check_wheel"),
        null="dropped", mount_deg=-8.0, repetitions_per_block=3),
    # PAMAP2-like: 9 subjects, 100 Hz, m/s^2, locomotion, postures and household
    "syn_pamap2": Preset(
        rate_hz=100.0, num_subjects=9, units="m/s^2", noise_g=0.04, minutes_per_class=1.0,
        classes=("lie", "sit", "stand", "walk", "run", "cycle", "nordic_walk", "stairs_up",
                 "stairs_down", "vacuum", "iron", "rope_jump"),
        null="dropped", mount_deg=20.0),
    # JSI-FOS-like: 10 subjects, 50 Hz, 8 everyday postures and locomotion
    "syn_jsifos": Preset(
        rate_hz=50.0, num_subjects=10, units="g", noise_g=0.025, minutes_per_class=1.2,
        classes=("lie", "sit", "stand", "walk", "run", "cycle", "kneel", "bend"),
        mount_deg=-15.0),
    # two tiny presets for tests and smoke runs
    "syn_smoke_a": Preset(
        rate_hz=50.0, num_subjects=4, units="g", noise_g=0.03, minutes_per_class=0.6,
        classes=("sit", "stand", "walk", "run", "cycle"), occurrence_s=(10.0, 25.0)),
    "syn_smoke_b": Preset(
        rate_hz=25.0, num_subjects=4, units="m/s^2", noise_g=0.03, minutes_per_class=0.6,
        classes=("lie", "sit", "walk", "run", "stairs_up"), mount_deg=10.0,
        occurrence_s=(10.0, 25.0)),
    # a third, for multi-source tests: two classes shared with syn_smoke_a
    "syn_smoke_c": Preset(
        rate_hz=40.0, num_subjects=4, units="g", noise_g=0.03, minutes_per_class=0.6,
        classes=("sit", "walk", "rope_jump", "kneel"), mount_deg=-5.0, occurrence_s=(10.0, 25.0)),
}
_TO_G = {"g": 1.0, "milli-g": 1e-3, "m/s^2": 1.0 / STANDARD_GRAVITY}


def _name_rng(name: str) -> np.random.Generator:
  """A generator seeded by a name alone: the same template in every dataset."""
  return np.random.default_rng(zlib.crc32(name.encode()))


def _rotation(axis_angle: np.ndarray) -> np.ndarray:
  angle = float(np.linalg.norm(axis_angle))
  if angle < 1e-12:
    return np.eye(3)
  k = axis_angle / angle
  K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
  return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def _smooth_noise(n: int, rate: float, rng: np.random.Generator, period_s: float) -> np.ndarray:
  """Zero-mean noise that varies on a time scale of period_s (unit std)."""
  knots = max(2, int(n / rate / period_s) + 2)
  return np.interp(np.linspace(0, knots - 1, n), np.arange(knots), rng.normal(size=knots))


def _up_vector(pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
  """The world's up direction in the sensor frame: what a still accelerometer reads (g)."""
  return np.stack([np.sin(pitch), np.cos(pitch) * np.sin(roll), np.cos(pitch) * np.cos(roll)], -1)


@dataclasses.dataclass(frozen=True)
class _Subject:
  rotation: np.ndarray
  cadence_scale: float
  amplitude_scale: float
  pitch_offset: float
  roll_offset: float


def _render_periodic(a: Periodic, n: int, rate: float, subject: _Subject,
                     rng: np.random.Generator) -> np.ndarray:
  amp = subject.amplitude_scale * rng.uniform(0.85, 1.15)
  cadence = a.cadence * subject.cadence_scale * (1 + 0.04 * _smooth_noise(n, rate, rng, 5.0))
  phase = 2 * np.pi * np.cumsum(cadence) / rate + rng.uniform(0, 2 * np.pi)
  pitch = (a.pitch + subject.pitch_offset + a.drift * _smooth_noise(n, rate, rng, 4.0)
           + a.swing * amp * np.sin(phase / 2))
  roll = (a.roll + subject.roll_offset + a.drift * _smooth_noise(n, rate, rng, 4.0)
          + a.roll_swing * amp * np.sin(phase / 2 + 1.0))
  up = _up_vector(pitch, roll)
  bounce = sum(h * np.cos(k * phase + 0.7 * k) for k, h in enumerate(a.harmonics, start=1))
  # the swing's tangential acceleration, along d(up)/d(pitch), in g
  tangential = (-FOREARM_M * a.swing * amp * (np.pi * cadence) ** 2 * np.sin(phase / 2)
                / STANDARD_GRAVITY)
  d_up = np.stack([np.cos(pitch), -np.sin(pitch) * np.sin(roll), -np.sin(pitch) * np.cos(roll)], -1)
  return up * (1 + a.impact * amp * bounce)[:, None] + d_up * tangential[:, None]


def _bumps(rng: np.random.Generator, count: int) -> np.ndarray:
  """count x (centre, width, amplitude) of Gaussian bumps on [0, 1]."""
  return np.stack([rng.uniform(0.15, 0.85, count), rng.uniform(0.06, 0.18, count),
                   rng.normal(0, 1, count)], -1)


def _random_template(rng: np.random.Generator) -> np.ndarray:
  """(5, 3, 3): three bumps each for pitch, roll and three translational axes."""
  return np.stack([_bumps(rng, 3) for _ in range(5)])


def _gesture_template(name: str) -> np.ndarray:
  return _random_template(_name_rng(name))


def _eval_bumps(bumps: np.ndarray, u: np.ndarray) -> np.ndarray:
  centre, width, height = bumps[:, 0:1], bumps[:, 1:2], bumps[:, 2:3]
  return (height * np.exp(-0.5 * ((u[None] - centre) / width) ** 2)).sum(0)


def _render_gesture(name: str, n: int, subject: _Subject, rng: np.random.Generator,
                    rest_pitch: float, rest_roll: float, template: np.ndarray | None = None,
                    amplitude: float | None = None) -> np.ndarray:
  g = LIBRARY.get(name)
  if template is None:
    template = _gesture_template(g.reverse_of or name)
  amplitude = (g.amplitude if amplitude is None else amplitude) * subject.amplitude_scale
  u = np.linspace(0, 1, n)
  u = np.clip(u + rng.uniform(-0.08, 0.08) * np.sin(np.pi * u), 0, 1)  # time warp
  if g is not None and g.reverse_of:
    u = 1 - u
  pitch = rest_pitch + 0.8 * amplitude * _eval_bumps(template[0], u)
  roll = rest_roll + 0.8 * amplitude * _eval_bumps(template[1], u)
  moves = np.stack([_eval_bumps(template[k], u) for k in (2, 3, 4)], -1)
  return _up_vector(pitch, roll) + 0.35 * amplitude * moves


def _null_motion(n: int, rate: float, subject: _Subject, rng: np.random.Generator) -> np.ndarray:
  """Background: resting hands that now and then make a movement of no class."""
  rest = Periodic(pitch=-0.3 + subject.pitch_offset, roll=0.2 + subject.roll_offset, drift=0.25)
  acc = _render_periodic(rest, n, rate, subject, rng)
  if n > rate and rng.random() < 0.6:
    length = int(min(n, rng.uniform(1.0, 3.0) * rate))
    start = rng.integers(0, n - length + 1)
    acc[start:start + length] = _render_gesture(
        "", length, subject, rng, -0.3, 0.2, template=_random_template(rng),
        amplitude=0.6)
  return acc


def _subject(rng: np.random.Generator) -> _Subject:
  return _Subject(rotation=_rotation(rng.normal(0, 0.2, 3)), cadence_scale=rng.uniform(0.88, 1.12),
                  amplitude_scale=rng.uniform(0.75, 1.25), pitch_offset=rng.normal(0, 0.15),
                  roll_offset=rng.normal(0, 0.2))


def _crossfade(pieces: list[np.ndarray], rate: float) -> np.ndarray:
  """Concatenates pieces, blending 0.25 s at each junction so the arm moves, not jumps."""
  out = [pieces[0]]
  fade = max(1, int(0.25 * rate))
  for piece in pieces[1:]:
    k = min(fade, len(out[-1]), len(piece))
    w = np.linspace(0, 1, k)[:, None]
    piece = piece.copy()
    piece[:k] = (1 - w) * out[-1][-k:] + w * piece[:k]
    out.append(piece)
  return np.concatenate(out)


def _session(preset: Preset, subject: _Subject, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
  """One subject's continuous recording: (acc in g, label ids; 0 = null, k = class k-1)."""
  rate = preset.rate_hz
  bouts: list[tuple[int, int]] = []  # (label, samples)
  for label, name in enumerate(preset.classes, start=1):
    total = preset.minutes_per_class * 60 * rate * rng.uniform(0.8, 1.2)
    activity = LIBRARY[name]
    while total > 0:
      if isinstance(activity, Gesture):
        length = activity.duration_s * rng.uniform(0.75, 1.3) * rate
        bouts.append((label, int(length) * preset.repetitions_per_block))
      else:
        length = rng.uniform(*preset.occurrence_s) * rate
        bouts.append((label, int(length)))
      total -= bouts[-1][1]
  order = rng.permutation(len(bouts))
  pieces, labels = [], []
  rest_pitch, rest_roll = -0.3 + subject.pitch_offset, 0.2 + subject.roll_offset
  for label, samples in (bouts[i] for i in order):
    if preset.null is not None:  # a null stretch before every bout
      length = int(rng.uniform(0.5, 3.0) * rate)
      pieces.append(_null_motion(length, rate, subject, rng))
      labels.append(np.zeros(length, np.int32))
    name = preset.classes[label - 1]
    activity = LIBRARY[name]
    if isinstance(activity, Gesture):
      each = samples // preset.repetitions_per_block
      for _ in range(preset.repetitions_per_block):
        pieces.append(_render_gesture(name, each, subject, rng, rest_pitch, rest_roll))
        labels.append(np.full(each, label, np.int32))
    else:
      pieces.append(_render_periodic(activity, samples, rate, subject, rng))
      labels.append(np.full(samples, label, np.int32))
  return _crossfade(pieces, rate), np.concatenate(labels)


def read(preset: str, *, seed: int = 0, scale: float = 1.0, **spec_options) -> RawDataset:
  """Simulates a preset (durations times `scale`) and returns it in g, as a reader would."""
  if preset not in PRESETS:
    raise DataError(f"unknown synthetic preset {preset!r}; known: {sorted(PRESETS)}")
  p = PRESETS[preset]
  if scale != 1.0:
    p = dataclasses.replace(p, minutes_per_class=p.minutes_per_class * scale)
  rng = np.random.default_rng([zlib.crc32(preset.encode()), seed])
  mount = _rotation(np.deg2rad(p.mount_deg) * np.array([0.3, 1.0, 0.5]) / np.linalg.norm([0.3, 1, 0.5]))
  recordings = []
  for s in range(1, p.num_subjects + 1):
    subject = _subject(rng)
    acc_g, labels = _session(p, subject, rng)
    acc_g = acc_g @ (mount @ subject.rotation).T + rng.normal(0, p.noise_g, acc_g.shape)
    raw = (acc_g / _TO_G[p.units]).astype(np.float32)  # as the device would store it
    recordings.append(Recording(
        acc_Tx3=(raw * _TO_G[p.units]).astype(np.float32), labels_T=labels, subject=s,
        recording_id=f"{preset}:subject{s}", rate_hz=p.rate_hz, source_units=p.units))
  names = {k: name for k, name in enumerate(p.classes, start=1)}
  if p.null is not None:
    names[0] = "null"
    if p.null == "dropped":
      spec_options.setdefault("keep", tuple(range(1, len(p.classes) + 1)))
  spec = DatasetSpec(preset, names, null_label=0 if p.null else None, rate_hz=p.rate_hz,
                     num_subjects=p.num_subjects, **spec_options)
  return RawDataset(spec, recordings)
