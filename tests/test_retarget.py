"""Retarget maths, presets and mapping checks (core/retarget, numpy only; the Blender side is tests/blender).

The character in these tests is built from our rig's rest hand turned by a known rotation G, with other bone
rolls, a forearm and metacarpals, fingers bent differently at rest: the rest alignment must find G, and the
character's bones, posed by Blender's rule from the keyed local rotations, must turn from their rest exactly as
ours do (seen through G).
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from core.errors import CaptureError
from core.hand.model import MANO_JOINTS, MANO_PARENTS
from core.retarget import maths, mapping, rigs, solve

ROOT = Path(__file__).resolve().parent.parent
F = 40


def _rot(rng, n=None, scale=1.0):
    aa = rng.normal(0, scale, (3,) if n is None else tuple(np.atleast_1d(n)) + (3,))
    ang = np.linalg.norm(aa, axis=-1)[..., None]
    q = np.concatenate([np.cos(ang / 2), np.sin(ang / 2) * aa / np.maximum(ang, 1e-12)], -1)
    return maths.quat_to_mat(q)


def _source(rng, side="right"):
    """Our rig's hand: rest heads from a flat hand, rest frames with Y along each bone, random motion."""
    heads = np.array([[0, 0, 0], [0.09, 0, 0.026], [0.123, 0, 0.026], [0.146, 0, 0.026], [0.094, 0, 0.005],
                      [0.13, 0, 0.005], [0.157, 0, 0.005], [0.078, 0, -0.034], [0.102, 0, -0.036], [0.12, 0, -0.037],
                      [0.087, 0, -0.015], [0.12, 0, -0.016], [0.145, 0, -0.017], [0.028, 0.006, 0.022],
                      [0.052, 0.008, 0.046], [0.072, 0.009, 0.062]])
    if side == "left":
        heads = heads * [1, 1, -1]
    rest = _rot(rng, 16)
    local = maths.mat_to_quat(_rot(rng, (F, 16), 0.5))
    return solve.SourceHand(side, rest, heads, local)


def _character(src, rng, names, g, curl=0.3):
    """Skeleton: root -> forearm -> hand -> (metacarpal) -> 3 finger bones -> end bone, heads = G @ our heads,
    rest rotations = G @ ours turned about random axes (other rolls and rest poses)."""
    bn, parents, rest, heads = ["root", "forearm"], [-1, 0], [np.eye(3), _rot(rng)], [np.zeros(3), [0, -0.3, 0]]
    wrist = len(bn)
    bn.append(names["wrist"]), parents.append(1), rest.append(g @ src.rest[0] @ _rot(rng)), heads.append(g @ src.heads[0])
    for f in rigs.FINGER_NAMES:
        prev = wrist
        for n in (0, 1, 2, 3):
            slot = f"{f}{n}"
            if slot not in names:
                continue
            j = MANO_JOINTS.index(slot) if n else MANO_JOINTS.index(f"{f}1")
            h = g @ (src.heads[j] if n else 0.5 * src.heads[j])
            r = g @ src.rest[j] @ _rot(rng, scale=curl) if n else _rot(rng)
            bn.append(names[slot]), parents.append(prev), rest.append(r), heads.append(h)
            prev = len(bn) - 1
        bn.append(names[f"{f}3"] + "_end"), parents.append(prev), rest.append(rest[-1]), heads.append(heads[-1])
    return mapping.Skeleton(tuple(bn), np.array(parents), np.array(rest), np.array(heads, float),
                            tuple("QUATERNION" for _ in bn))


def _pose(skel, res, parent_world=None):
    """Blender's rule W_b = W_p T0_p^T T0_b L_b over the whole skeleton, keyed bones from ``res``, others at rest."""
    n = len(skel.names)
    lm = np.broadcast_to(np.eye(3), (F, n, 3, 3)).copy()
    for k, name in enumerate(res.names):
        lm[:, skel.index(name)] = maths.quat_to_mat(res.quats[:, k])
    w = np.empty_like(lm)
    for b in range(n):
        p = skel.parents[b]
        if p < 0:
            w[:, b] = skel.rest[b] @ lm[:, b]
        elif parent_world is not None and skel.names[p] == "forearm":
            w[:, b] = parent_world @ skel.rest[p].T @ skel.rest[b] @ lm[:, b]
        else:
            w[:, b] = w[:, p] @ skel.rest[p].T @ skel.rest[b] @ lm[:, b]
    return w


@pytest.mark.parametrize("preset,side", [("UNREAL", "left"), ("VRM", "right"), ("MIXAMO", "right")])
def test_fingers_turn_like_ours_through_the_rest_alignment(preset, side):
    rng = np.random.default_rng(3)
    src = _source(rng, side)
    g = _rot(rng)
    names = rigs.preset_bones(preset, side)
    skel = _character(src, rng, names, g)
    slots = mapping.validate(mapping.from_preset(preset), skel, [side])
    res = solve.retarget_hand(src, skel, slots[side])
    np.testing.assert_allclose(res.align, g, atol=1e-9)  # the heads are ours turned by G: exactly G
    w = _pose(skel, res)
    sw = solve.source_world(src.rest, src.local)
    hand = skel.index(names["wrist"])
    for slot in rigs.FINGER_SLOTS:
        j, b = MANO_JOINTS.index(slot), skel.index(names[slot])
        ours = src.rest[0] @ np.swapaxes(sw[:, 0], -1, -2) @ sw[:, j] @ src.rest[j].T  # turn from rest, hand-relative
        theirs = skel.rest[hand] @ np.swapaxes(w[:, hand], -1, -2) @ w[:, b] @ skel.rest[b].T
        assert maths.angle_deg(theirs, g @ ours @ g.T).max() < 1e-6, slot
    for f in rigs.FINGER_NAMES[1:]:  # metacarpals (Unreal) stay at rest
        if f"{f}0" in names:
            k = res.names.index(names[f"{f}0"])
            np.testing.assert_allclose(np.abs(res.quats[:, k, 0]), 1.0, atol=1e-12)
    assert (np.sum(res.quats[1:] * res.quats[:-1], -1) >= 0).all()  # sign-continuous


@pytest.mark.parametrize("orientation", solve.ORIENTATIONS)
def test_wrist_against_the_animated_forearm(orientation):
    rng = np.random.default_rng(4)
    src = _source(rng)
    g = _rot(rng)
    names = rigs.preset_bones("MIXAMO", "right")
    skel = _character(src, rng, names, g)
    slots = mapping.validate(mapping.from_preset("MIXAMO"), skel, ["right"], wrist=True)["right"]
    forearm = _rot(rng, F)  # the character's own arm animation
    obj = _rot(rng)
    res = solve.retarget_hand(src, skel, slots, solve.Options(wrist="WRIST", orientation=orientation),
                              parent_world=forearm, object_rot=obj)
    assert res.names[0] == names["wrist"]
    w = _pose(skel, res, parent_world=forearm)
    sw = solve.source_world(src.rest, src.local)
    m = {"FACING": obj.T, "FIRST_PERSON": obj.T @ maths.axis_rotation(2, np.pi), "REST": g}[orientation]
    h = skel.index(names["wrist"])
    want = m @ sw[:, 0] @ src.rest[0].T @ g.T @ skel.rest[h]
    assert maths.angle_deg(w[:, h], want).max() < 1e-6
    if orientation == "REST":  # at our rest wrist the character's hand is at its rest
        assert maths.angle_deg(g @ src.rest[0] @ src.rest[0].T @ g.T @ skel.rest[h], skel.rest[h]) < 1e-9
    # fingers stay relative to the hand, whatever the wrist does
    plain = solve.retarget_hand(src, skel, slots)
    np.testing.assert_allclose(res.quats[:, 1:], plain.quats, atol=1e-12)


def test_strength_fingers_and_rotation_modes():
    rng = np.random.default_rng(5)
    src = _source(rng)
    names = rigs.preset_bones("VROID", "right")
    skel = _character(src, rng, names, _rot(rng))
    slots = mapping.validate(mapping.from_preset("VROID"), skel, ["right"], fingers=("index", "thumb"))["right"]
    full = solve.retarget_hand(src, skel, slots, solve.Options(fingers=("index", "thumb")))
    assert set(full.slots) == {"thumb1", "thumb2", "thumb3", "index1", "index2", "index3"}
    half = solve.retarget_hand(src, skel, slots, solve.Options(fingers=("index", "thumb"), strength=0.5))
    ang_full = 2 * np.arccos(np.clip(np.abs(full.quats[..., 0]), 0, 1))
    ang_half = 2 * np.arccos(np.clip(np.abs(half.quats[..., 0]), 0, 1))
    np.testing.assert_allclose(ang_half, ang_full / 2, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(half.quats[..., 1:] * full.quats[..., 1:], -1)),
                               np.linalg.norm(half.quats[..., 1:], axis=-1) * np.linalg.norm(full.quats[..., 1:], axis=-1),
                               atol=1e-9)  # same axes
    zero = solve.retarget_hand(src, skel, slots, solve.Options(strength=0.0, fingers=("index", "thumb")))
    np.testing.assert_allclose(np.abs(zero.quats[..., 0]), 1.0)
    q = full.quats[:, 0]
    mat = maths.quat_to_mat(q)
    for mode in maths.EULER_ORDERS:
        path, v = solve.rotation_channels(q, mode)
        assert path == "rotation_euler" and v.shape == (F, 3)
        assert maths.angle_deg(maths.euler_to_mat(v, mode), mat).max() < 1e-6
        assert np.abs(np.diff(v, axis=0)).max() < np.pi  # unwrapped
    path, v = solve.rotation_channels(q, "AXIS_ANGLE")
    aa = v[:, :1] * v[:, 1:]
    assert path == "rotation_axis_angle"
    assert maths.angle_deg(maths.quat_to_mat(np.concatenate([np.cos(v[:, :1] / 2), np.sin(v[:, :1] / 2) * v[:, 1:]], 1)),
                           mat).max() < 1e-6 and aa.shape == (F, 3)
    with pytest.raises(CaptureError, match="strength"):
        solve.Options(strength=1.5)


def test_maths():
    rng = np.random.default_rng(6)
    m = _rot(rng, 500, 2.0)
    np.testing.assert_allclose(maths.quat_to_mat(maths.mat_to_quat(m)), m, atol=1e-12)
    a, b = maths.mat_to_quat(m[:250]), maths.mat_to_quat(m[250:])
    np.testing.assert_allclose(maths.quat_to_mat(maths.quat_multiply(a, b)), m[:250] @ m[250:], atol=1e-12)
    for order in maths.EULER_ORDERS:
        e = maths.mat_to_euler(m, order)
        np.testing.assert_allclose(maths.euler_to_mat(e, order), m, atol=1e-12)
    x = maths.axis_rotation(0, 0.3)
    np.testing.assert_allclose(maths.euler_to_mat([0.3, 0.2, 0.1], "XYZ"),
                               maths.axis_rotation(2, 0.1) @ maths.axis_rotation(1, 0.2) @ x)  # Blender: X first
    np.testing.assert_allclose(maths.orthonormal(m[:5] * 2.5), m[:5], atol=1e-12)
    src = rng.normal(size=(6, 3))
    np.testing.assert_allclose(maths.kabsch(src, src @ m[0].T), m[0], atol=1e-12)


RIG_NAMES = {
    "RIGIFY": ["root", "hand_fk.L", "DEF-f_index.01.L", "ORG-f_index.01.L", "f_index.01_master.L", "MCH-f_index.01_drv.L"]
    + [f"f_{f}.0{n}.{s}" for f in ("index", "middle", "ring", "pinky") for n in (1, 2, 3) for s in "LR"]
    + [f"thumb.0{n}.{s}" for n in (1, 2, 3) for s in "LR"] + ["hand_fk.R"],
    "RIGIFY_META": ["hand.L", "hand.R", "palm.01.L"] + [f"f_{f}.0{n}.{s}" for f in ("index", "middle", "ring", "pinky")
                                                         for n in (1, 2, 3) for s in "LR"]
    + [f"thumb.0{n}.{s}" for n in (1, 2, 3) for s in "LR"],
    "MIXAMO": [f"mixamorig1:{s}Hand{f}{n}" for s in ("Left", "Right") for f in ("Thumb", "Index", "Middle", "Ring", "Pinky")
               for n in (1, 2, 3, 4)] + ["mixamorig1:LeftHand", "mixamorig1:RightHand"],
    "UNREAL": [f"{f}_0{n}_{s}" for f in rigs.FINGER_NAMES for n in (1, 2, 3) for s in "lr"]
    + [f"{f}_metacarpal_l" for f in ("index", "middle", "ring", "pinky")] + ["hand_l", "hand_r"],
    "VRM": list(rigs.preset_bones("VRM", "left").values()),
    "VROID": list(rigs.preset_bones("VROID", "right").values()) + ["J_Bip_C_Hips"],
}


@pytest.mark.parametrize("preset", sorted(RIG_NAMES))
def test_detect(preset):
    assert rigs.detect(RIG_NAMES[preset]) == preset
    m = mapping.from_preset(preset, RIG_NAMES[preset])
    if preset == "MIXAMO":
        assert m.bone("left", "index1") == "mixamorig1:LeftHandIndex1"  # the rig's own namespace
        assert not any(b.endswith("4") for side in m.bones.values() for b in side.values())  # end bones never mapped
    assert rigs.detect(["root", "spine", "hand.L"]) is None


def test_presets_name_the_thumb_chain_and_sides():
    assert rigs.preset_bones("RIGIFY", "left")["thumb1"] == "thumb.01.L"
    assert rigs.preset_bones("MIXAMO", "right")["thumb1"] == "mixamorig:RightHandThumb1"
    assert rigs.preset_bones("UNREAL", "left")["thumb1"] == "thumb_01_l"
    assert rigs.preset_bones("UNREAL", "left")["index0"] == "index_metacarpal_l"
    assert rigs.preset_bones("VRM", "left")["thumb1"] == "leftThumbMetacarpal"
    assert rigs.preset_bones("VRM", "left")["pinky2"] == "leftLittleIntermediate"
    assert rigs.preset_bones("VROID", "left")["index1"] == "J_Bip_L_Index1"
    for preset in rigs.PRESETS:
        for side in rigs.SIDES:
            assert {rigs.side_of(b) for b in rigs.preset_bones(preset, side).values()} == {side}, (preset, side)
    assert not any(b.startswith(("DEF-", "ORG-", "MCH-")) or "_master" in b
                   for b in rigs.preset_bones("RIGIFY", "left").values())


def test_validate_names_every_problem_in_one_sentence():
    rng = np.random.default_rng(7)
    src = _source(rng, "left")
    names = rigs.preset_bones("MIXAMO", "left")
    skel = _character(src, rng, names, np.eye(3))
    skel = mapping.Skeleton(skel.names + ("mixamorig:LeftHandIndex4", "mixamorig:RightHandRing1"),
                            np.r_[skel.parents, skel.index(names["index3"]), 0], np.concatenate([skel.rest, skel.rest[:2]]),
                            np.concatenate([skel.heads, skel.heads[:2]]), skel.modes + ("QUATERNION",) * 2)
    bones = dict(names)
    bones["middle3"] = "mixamorig:LeftHandMiddle9"  # missing
    bones["ring1"] = "mixamorig:RightHandRing1"  # other side, and not above ring2
    bones["index3"] = "mixamorig:LeftHandIndex4"  # an end bone
    bones["pinky2"] = ""  # not mapped
    with pytest.raises(CaptureError) as err:
        mapping.validate(mapping.Mapping("CUSTOM", {"left": bones}), skel, ["left"], target="Armature")
    msg = str(err.value)
    for part in ("mixamorig:LeftHandMiddle9", "mixamorig:RightHandRing1 (for the left ring1)", "mixamorig:LeftHandIndex4",
                 "left pinky2", "mixamorig:RightHandRing1 -> mixamorig:LeftHandRing2", "Armature", "nothing was changed"):
        assert part in msg, (part, msg)
    assert msg.count(".") <= 2 and "\n" not in msg  # one sentence (dots only in names)
    bones = dict(names)
    bones["thumb2"] = bones["index2"]
    with pytest.raises(CaptureError, match="mapped twice: mixamorig:LeftHandIndex2"):
        mapping.validate(mapping.Mapping("CUSTOM", {"left": bones}), skel, ["left"])
    # disabled fingers are not checked
    bones = dict(names, pinky1="nope")
    ok = mapping.validate(mapping.Mapping("CUSTOM", {"left": bones}), skel, ["left"], fingers=("thumb", "index"))
    assert set(ok["left"]) == {"wrist", "thumb1", "thumb2", "thumb3", "index1", "index2", "index3"}


def test_json_round_trip(tmp_path):
    m = mapping.from_preset("UNREAL")
    back = mapping.load(mapping.save(m, tmp_path / "ue5.json"))
    assert back == m
    custom = mapping.Mapping("CUSTOM", {"left": {"wrist": "Hand.L", "index1": "Finger.L"}, "right": {}})
    assert mapping.from_json(mapping.to_json(custom)) == custom
    (tmp_path / "bad.json").write_text('{"format": "hand_capture.retarget_mapping", "bones": {"left": {"toe1": "x"}}}')
    with pytest.raises(CaptureError, match="left.toe1"):
        mapping.load(tmp_path / "bad.json")
    with pytest.raises(CaptureError, match="not a retarget mapping"):
        mapping.from_json("[1, 2]")


def test_numpy_only():
    """Blender's Python runs core/retarget: nothing but numpy and the standard library (and our numpy modules)."""
    for path in (ROOT / "core" / "retarget").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for mod in mods:
                    if node.__class__ is ast.ImportFrom and node.level:
                        assert mod in ("errors", "hand.model", "maths", "mapping", "rigs", "solve", ""), (path, mod)
                    else:
                        assert mod.split(".")[0] in ("numpy", "__future__", "dataclasses", "json", "re", "pathlib"), (path, mod)
