"""Render a chunk of synthetic training images: ``python blender_addon/synth_render.py --in scene.npz --out DIR``.

Run by `core.net.synth` in a subprocess with a Python that has bpy (core never imports bpy), in the way
``demo_render.py`` renders the demo. Imports only bpy, numpy, the standard library and (by path) the
add-on's numpy-only ``demo_render.py`` / ``convert.py`` for the camera. Everything it draws was computed by
`core.net.synth.sample` (see there for what each array means); this script only turns arrays into bpy data
and pixels.

Per image i it writes ``DIR/{i:04d}.png`` (Cycles, ``samples`` per pixel, no denoising; on the CPU, or with
``--device gpu`` on the first GPU backend that has a device) and ``DIR/{i:04d}_mask.png`` (Workbench,
flat object colours, no anti-aliasing): black background (and the background plane), red the right hand,
green the left hand, blue the right forearm, yellow the left forearm, cyan occluders. Stdout carries one JSON object per line (``{"event": "progress", ...}``, then
``{"event": "done", ...}``); Blender's own log goes to stderr.

Frames: as in ``demo_render.py``, the camera sits at the origin turned 180 degrees about X, so the world
frame is the OpenCV camera frame (x right, y down, z forward, metres) and every array is used as given.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

MASK_COLOURS = {"hand_0": (1, 0, 0), "hand_1": (0, 1, 0), "arm_0": (0, 0, 1), "arm_1": (1, 1, 0),
                "occluder": (0, 1, 1), "background": (0, 0, 0)}
BG_KINDS = ("noise", "voronoi", "wave", "checker", "magic", "brick", "gradient", "plain")
_TEX = {"noise": "ShaderNodeTexNoise", "voronoi": "ShaderNodeTexVoronoi", "wave": "ShaderNodeTexWave",
        "checker": "ShaderNodeTexChecker", "magic": "ShaderNodeTexMagic", "brick": "ShaderNodeTexBrick",
        "gradient": "ShaderNodeTexGradient"}


def _demo_render():
    """``demo_render.py`` (camera conversion, stdout guard), loaded by path: this script runs outside the package."""
    spec = importlib.util.spec_from_file_location("handcap_demo_render", Path(__file__).with_name("demo_render.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _sock(sockets, name, kind=None):
    for s in sockets:
        if s.name == name and (kind is None or s.type == kind):
            return s
    raise KeyError(name)


def _set_input(node, name, value):
    for s in node.inputs:
        if s.name == name and s.enabled:
            s.default_value = value
            return True
    return False


def _mix(nodes, links, a, b, fac):
    """A colour mix node: result = lerp(a, b, fac); a, b, fac are sockets or values."""
    m = nodes.new("ShaderNodeMix")
    m.data_type = "RGBA"
    for name, src in (("A", a), ("B", b)):
        dst = _sock(m.inputs, name, "RGBA")
        if hasattr(src, "links"):
            links.new(src, dst)
        else:
            dst.default_value = src
    f = _sock(m.inputs, "Factor", "VALUE")
    if hasattr(fac, "links"):
        links.new(fac, f)
    else:
        f.default_value = fac
    return _sock(m.outputs, "Result", "RGBA")


def _math(nodes, links, op, a, b):
    m = nodes.new("ShaderNodeMath")
    m.operation = op
    for k, src in enumerate((a, b)):
        if hasattr(src, "links"):
            links.new(src, m.inputs[k])
        else:
            m.inputs[k].default_value = src
    return m


def _principled(nodes):
    bsdf = nodes.get("Principled BSDF") or nodes.new("ShaderNodeBsdfPrincipled")
    return bsdf


def _new_material(bpy, name):
    mat = bpy.data.materials.new(name)
    if not mat.use_nodes:
        mat.use_nodes = True
    return mat


def skin_material(bpy, name):
    """Principled skin: mottling noise, lighter palm, nails (mesh attributes 'nail', 'palm'), subsurface, wrinkle bump.
    Returns (material, {param: node}) for the per-image values."""
    mat = _new_material(bpy, name)
    nt = mat.node_tree
    nodes, links = nt.nodes, nt.links
    bsdf = _principled(nodes)
    p = {}
    for key in ("base", "dark", "light", "nail"):
        p[key] = nodes.new("ShaderNodeRGB")
    coord = nodes.new("ShaderNodeTexCoord")
    noise = nodes.new("ShaderNodeTexNoise")
    links.new(coord.outputs["Object"], noise.inputs["Vector"])
    noise.inputs["Detail"].default_value = 4.0
    p["noise"] = noise
    amount = _math(nodes, links, "MULTIPLY", noise.outputs["Fac"], 0.1)
    p["amount"] = amount
    col = _mix(nodes, links, p["base"].outputs[0], p["dark"].outputs[0], amount.outputs[0])
    palm_attr = nodes.new("ShaderNodeAttribute")
    palm_attr.attribute_name = "palm"
    palm_w = _math(nodes, links, "MULTIPLY", palm_attr.outputs["Fac"], 0.0)
    p["palm"] = palm_w
    col = _mix(nodes, links, col, p["light"].outputs[0], palm_w.outputs[0])
    nail_attr = nodes.new("ShaderNodeAttribute")
    nail_attr.attribute_name = "nail"
    col = _mix(nodes, links, col, p["nail"].outputs[0], nail_attr.outputs["Fac"])
    links.new(col, bsdf.inputs["Base Color"])
    rough = _math(nodes, links, "MULTIPLY", nail_attr.outputs["Fac"], -0.3)
    rough_total = _math(nodes, links, "ADD", rough.outputs[0], 0.5)
    p["rough"] = rough_total
    links.new(rough_total.outputs[0], bsdf.inputs["Roughness"])
    wrinkle = nodes.new("ShaderNodeTexNoise")
    links.new(coord.outputs["Object"], wrinkle.inputs["Vector"])
    wrinkle.inputs["Detail"].default_value = 8.0
    p["wrinkle"] = wrinkle
    bump = nodes.new("ShaderNodeBump")
    links.new(wrinkle.outputs["Fac"], bump.inputs["Height"])
    links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    p["bump"] = bump
    p["bsdf"] = bsdf
    _set_input(bsdf, "Subsurface Radius", (1.0, 0.35, 0.2))
    if hasattr(bsdf, "subsurface_method"):
        bsdf.subsurface_method = "BURLEY"
    return mat, p


def set_skin(p, a, i, s):
    """Per-image skin values of side s."""
    base = a["skin_rgb"][i, s]
    p["base"].outputs[0].default_value = (*base, 1.0)
    p["dark"].outputs[0].default_value = (*(base * np.array([0.78, 0.62, 0.6])), 1.0)
    p["light"].outputs[0].default_value = (*np.clip(base * np.array([1.25, 1.18, 1.12]) + 0.03, 0, 1), 1.0)
    p["nail"].outputs[0].default_value = (*a["nail_rgb"][i, s], 1.0)
    p["noise"].inputs["Scale"].default_value = float(a["skin_noise_scale"][i, s])
    p["amount"].inputs[1].default_value = float(a["skin_noise_amount"][i, s])
    p["palm"].inputs[1].default_value = float(a["skin_palm"][i, s])
    p["rough"].inputs[1].default_value = float(a["skin_rough"][i, s])
    p["wrinkle"].inputs["Scale"].default_value = float(a["skin_noise_scale"][i, s]) * 2.5
    p["bump"].inputs["Strength"].default_value = float(a["skin_bump"][i, s])
    bsdf = p["bsdf"]
    _set_input(bsdf, "Subsurface Weight", float(a["skin_sss"][i, s]))
    _set_input(bsdf, "Subsurface Scale", float(a["skin_sss_scale"][i, s]))


def background_material(bpy, kind):
    mat = _new_material(bpy, f"synth_bg_{kind}")
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = _principled(nodes)
    p = {"bsdf": bsdf, "c1": nodes.new("ShaderNodeRGB"), "c2": nodes.new("ShaderNodeRGB")}
    if kind == "plain":
        links.new(p["c1"].outputs[0], bsdf.inputs["Base Color"])
        return mat, p
    coord = nodes.new("ShaderNodeTexCoord")
    tex = nodes.new(_TEX[kind])
    links.new(coord.outputs["Object"], tex.inputs["Vector"])
    p["tex"] = tex
    fac = tex.outputs["Fac"] if "Fac" in tex.outputs else tex.outputs[0]
    if kind == "voronoi":
        fac = tex.outputs["Distance"]
    col = _mix(nodes, links, p["c1"].outputs[0], p["c2"].outputs[0], fac)
    links.new(col, bsdf.inputs["Base Color"])
    return mat, p


def use_gpu(bpy) -> str:
    """Point Cycles at the first GPU backend that has a device (OptiX, CUDA, HIP, oneAPI, Metal); its name."""
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for kind in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
        try:
            prefs.compute_device_type = kind
        except (TypeError, ValueError):
            continue
        prefs.get_devices()
        if any(d.type == kind for d in prefs.devices):
            for d in prefs.devices:
                d.use = d.type == kind
            return kind
    raise SystemExit("Cycles finds no GPU (OptiX, CUDA, HIP, oneAPI, Metal); render with --device cpu")


def _matrix(m):
    from mathutils import Matrix

    return Matrix([list(map(float, row)) for row in m])


class Scene:
    """The bpy data of a chunk, built once; `show` sets one image's values."""

    def __init__(self, bpy, a, threads, device="cpu"):
        self.bpy, self.a = bpy, a
        bpy.ops.wm.read_factory_settings(use_empty=True)
        sc = self.sc = bpy.context.scene
        self.dr = _demo_render()
        mesh_from_arrays = self.dr.mesh_from_arrays
        cam = bpy.data.cameras.new("synth_camera")
        cam_obj = bpy.data.objects.new("synth_camera", cam)
        cam_obj.rotation_euler = (math.pi, 0.0, 0.0)
        sc.collection.objects.link(cam_obj)
        sc.camera = cam_obj
        self.cam = cam

        def link(name, data, colour):
            obj = bpy.data.objects.new(name, data)
            sc.collection.objects.link(obj)
            obj.color = (*colour, 1.0)
            return obj

        # Hands (index = side: 0 right, 1 left; a left hand is mirrored, so its faces turn round) and forearms.
        self.hands, self.arms, self.skins = [], [], []
        for s in (0, 1):
            hf = a["hand_faces"] if s == 0 else a["hand_faces"][:, ::-1]
            af = a["arm_faces"] if s == 0 else a["arm_faces"][:, ::-1]
            hm = mesh_from_arrays(bpy, f"synth_hand_{s}", a["hand_verts"][0, s], hf, True)
            for attr in ("nail", "palm"):
                at = hm.attributes.new(attr, "FLOAT", "POINT")
                at.data.foreach_set("value", np.ascontiguousarray(a[attr], np.float32))
            am = mesh_from_arrays(bpy, f"synth_arm_{s}", a["arm_verts"][0, s], af, True)
            mat, p = skin_material(bpy, f"synth_skin_{s}")
            hm.materials.append(mat)
            am.materials.append(mat)
            self.hands.append(link(f"synth_hand_{s}", hm, MASK_COLOURS[f"hand_{s}"]))
            self.arms.append(link(f"synth_arm_{s}", am, MASK_COLOURS[f"arm_{s}"]))
            self.skins.append(p)
        # Background plane (a 2 x 2 quad, scaled by its matrix) with a material per texture kind.
        quad = mesh_from_arrays(bpy, "synth_bg", [[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]],
                                [[0, 1, 2], [0, 2, 3]], False)
        self.bg = link("synth_bg", quad, MASK_COLOURS["background"])
        self.bg_mats = [background_material(bpy, k) for k in BG_KINDS]
        quad.materials.append(self.bg_mats[0][0])
        # Occluder meshes and slots.
        self.meshes = [mesh_from_arrays(bpy, f"synth_mesh_{k}", a[f"mesh_{k}_v"], a[f"mesh_{k}_f"],
                                        bool(a[f"mesh_{k}_smooth"])) for k in range(int(a["n_meshes"]))]
        for mesh in self.meshes:
            mesh.materials.append(None)  # one slot; each occluder object links its own material there
        self.occ, self.occ_mats = [], []
        for o in range(a["occ_kind"].shape[1]):
            mat = _new_material(bpy, f"synth_occ_{o}")
            self.occ_mats.append(_principled(mat.node_tree.nodes))
            obj = link(f"synth_occ_{o}", self.meshes[0], MASK_COLOURS["occluder"])
            # the material sits on the object, not on the (shared, swapped) mesh
            obj.material_slots[0].link = "OBJECT"
            obj.material_slots[0].material = mat
            self.occ.append(obj)
        # Lights and world.
        sun = bpy.data.lights.new("synth_sun", "SUN")
        self.sun = link("synth_sun", sun, (0, 0, 0))
        area = bpy.data.lights.new("synth_area", "AREA")
        self.area = link("synth_area", area, (0, 0, 0))
        world = bpy.data.worlds.new("synth_world")
        if getattr(world, "node_tree", None) is None:
            world.use_nodes = True
        sc.world = world
        self.world_bg = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
        # Render settings.
        width, height = (int(x) for x in a["image_size"])
        r = sc.render
        r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
        r.film_transparent = False
        r.image_settings.file_format = "PNG"
        r.image_settings.color_mode = "RGB"
        r.image_settings.color_depth = "8"
        if threads:
            r.threads_mode, r.threads = "FIXED", int(threads)
        cy = sc.cycles
        cy.device = "CPU"
        self.gpu = None
        if device == "gpu":
            self.gpu = use_gpu(bpy)
            cy.device = "GPU"
        cy.samples = int(a["samples"])
        cy.use_denoising = False
        cy.use_adaptive_sampling = False
        cy.max_bounces, cy.diffuse_bounces, cy.glossy_bounces = 4, 2, 2
        cy.transmission_bounces, cy.transparent_max_bounces = 2, 2
        cy.caustics_reflective = cy.caustics_refractive = False
        sh = sc.display.shading
        sh.light, sh.color_type = "FLAT", "OBJECT"
        sh.show_specular_highlight = sh.show_cavity = sh.show_shadows = sh.show_object_outline = False
        sc.display.render_aa = "OFF"

    def show(self, i):
        a, sc = self.a, self.sc
        K = a["K"][i]
        width, height = (int(x) for x in a["image_size"])
        for key, value in self.dr.camera_settings(K, width, height).items():
            setattr(self.cam, key, value)
        for s in (0, 1):
            on = bool(a["side_present"][i, s])
            for obj, key in ((self.hands[s], "hand_verts"), (self.arms[s], "arm_verts")):
                obj.hide_render = not on
                if on:
                    obj.data.vertices.foreach_set("co", np.ascontiguousarray(a[key][i, s], np.float32).ravel())
                    obj.data.update()
            if on:
                set_skin(self.skins[s], a, i, s)
        self.bg.hide_render = not bool(a["bg_present"][i])
        self.bg.matrix_world = _matrix(a["bg_matrix"][i])
        mat, p = self.bg_mats[int(a["bg_kind"][i])]
        self.bg.data.materials[0] = mat
        p["c1"].outputs[0].default_value = (*a["bg_rgb"][i, 0], 1.0)
        p["c2"].outputs[0].default_value = (*a["bg_rgb"][i, 1], 1.0)
        if "tex" in p:
            _set_input(p["tex"], "Scale", float(a["bg_scale"][i]))
            _set_input(p["tex"], "Detail", float(a["bg_detail"][i]))
            _set_input(p["tex"], "Distortion", float(a["bg_distort"][i]))
        _set_input(p["bsdf"], "Roughness", float(a["bg_rough"][i]))
        for o, obj in enumerate(self.occ):
            kind = int(a["occ_kind"][i, o])
            obj.hide_render = kind < 0
            if kind >= 0:
                obj.data = self.meshes[kind]
                obj.matrix_world = _matrix(a["occ_matrix"][i, o])
                bsdf = self.occ_mats[o]
                _set_input(bsdf, "Base Color", (*a["occ_rgb"][i, o], 1.0))
                _set_input(bsdf, "Roughness", float(a["occ_rough"][i, o]))
                _set_input(bsdf, "Metallic", float(a["occ_metal"][i, o]))
        from mathutils import Vector

        d = Vector([float(x) for x in a["sun_dir"][i]])
        self.sun.rotation_euler = d.to_track_quat("-Z", "Y").to_euler()
        self.sun.data.energy = float(a["sun_strength"][i])
        self.sun.data.color = tuple(float(x) for x in a["sun_rgb"][i])
        self.sun.data.angle = float(a["sun_angle"][i])
        self.area.hide_render = not bool(a["area_present"][i])
        self.area.matrix_world = _matrix(a["area_matrix"][i])
        self.area.data.energy = float(a["area_power"][i])
        self.area.data.size = float(a["area_size"][i])
        self.area.data.color = tuple(float(x) for x in a["area_rgb"][i])
        self.world_bg.inputs["Color"].default_value = (*a["world_rgb"][i], 1.0)
        self.world_bg.inputs["Strength"].default_value = float(a["world_strength"][i])
        sc.cycles.seed = int(a["render_seed"][i])

    def render(self, path_rgb, path_mask, i):
        bpy, sc, a = self.bpy, self.sc, self.a
        sc.render.engine = "CYCLES"
        sc.view_settings.view_transform = "AgX" if bool(a["agx"][i]) else "Standard"
        sc.view_settings.exposure = float(a["exposure"][i])
        sc.render.dither_intensity = 1.0
        sc.render.filepath = str(path_rgb)
        bpy.ops.render.render(write_still=True)
        sc.render.engine = "BLENDER_WORKBENCH"
        sc.view_settings.view_transform = "Standard"
        sc.view_settings.exposure = 0.0
        sc.render.dither_intensity = 0.0
        sc.world.color = (0.0, 0.0, 0.0)
        sc.render.filepath = str(path_mask)
        bpy.ops.render.render(write_still=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in", dest="inp", required=True, help="scene .npz written by core.net.synth")
    ap.add_argument("--out", required=True, help="folder for the PNG images and masks")
    ap.add_argument("--threads", type=int, default=0, help="render threads (0: all)")
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="Cycles device")
    args = ap.parse_args(argv)
    with np.load(args.inp, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dr = _demo_render()
    events = os.fdopen(os.dup(1), "w")
    t0 = time.perf_counter()
    n = len(a["K"])
    with dr._stdout_to_stderr():
        import bpy

        scene = Scene(bpy, a, args.threads, args.device)
        for i in range(n):
            scene.show(i)
            scene.render(out / f"{i:04d}.png", out / f"{i:04d}_mask.png", i)
            dr._emit(events, "progress", done=i + 1, total=n)
    dr._emit(events, "done", images=n, seconds=round(time.perf_counter() - t0, 3),
             blender=bpy.app.version_string, device=scene.gpu or "CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
