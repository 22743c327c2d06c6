// node --test farm/flamenco/: the job type compiles, with stand-in globals (standin.js), into the expected tasks,
// commands and dependencies.
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const { compile } = require("./standin.js");

const BASE = {
    manifest: "/studio/shots/manifest.json", output_dir: "/studio/out", clips: '["a", "b-2"]',
    handcap: "/studio/handcap", python: "{handcap_python}", blender: "{blender}",
};
const SCRIPT = "/studio/handcap/farm/handcap.py";

test("per clip a capture task and a dependent keying task", () => {
    const { tasks } = compile(BASE);
    assert.deepStrictEqual(tasks.map((t) => [t.name, t.type, t.dependencies]), [
        ["capture-a", "misc", []], ["keying-a", "blender", ["capture-a"]],
        ["capture-b-2", "misc", []], ["keying-b-2", "blender", ["capture-b-2"]],
    ]);
    assert.deepStrictEqual(tasks[0].commands, [{ name: "exec", parameters: {
        exe: "{handcap_python}",
        args: [SCRIPT, "batch", "/studio/shots/manifest.json", "--out", "/studio/out", "--only", "a", "--quiet"],
    } }]);
    assert.deepStrictEqual(tasks[1].commands, [{ name: "exec", parameters: {
        exe: "{handcap_python}",
        args: [SCRIPT, "batch", "/studio/shots/manifest.json", "--out", "/studio/out", "--only", "a", "--quiet",
               "--blend", "--blender", "{blender}"],
    } }]);
});

test("defaults: the variables, keying on, capture tasks of type misc", () => {
    const { jobType, tasks } = compile({ manifest: "/m.json", output_dir: "/o", clips: '["x"]' });
    assert.strictEqual(jobType.label, "Hand Capture");
    assert.strictEqual(tasks[0].commands[0].parameters.exe, "{handcap_python}");
    assert.strictEqual(tasks[0].commands[0].parameters.args[0], "{handcap}/farm/handcap.py");
    assert.deepStrictEqual(tasks[1].commands[0].parameters.args.slice(-3), ["--blend", "--blender", "{blender}"]);
});

test("GPU task type, root, FBX, no keying", () => {
    const gpu = compile({ ...BASE, capture_task_type: "hand-capture-gpu", root: "/studio/footage", fbx: true });
    assert.strictEqual(gpu.tasks[0].type, "hand-capture-gpu");
    assert.deepStrictEqual(gpu.tasks[0].commands[0].parameters.args.slice(-3), ["--quiet", "--root", "/studio/footage"]);
    assert.deepStrictEqual(gpu.tasks[1].commands[0].parameters.args.slice(-4), ["--blend", "--blender", "{blender}", "--fbx"]);
    const bare = compile({ ...BASE, keying: false });
    assert.deepStrictEqual(bare.tasks.map((t) => t.name), ["capture-a", "capture-b-2"]);
});

test("bad clip lists are refused with one sentence", () => {
    for (const [clips, message] of [["a.mp4", /JSON list/], ["[]", /non-empty/], ['["a", "a"]', /listed twice/],
                                    ['["../x"]', /must be letters/], ["[3]", /must be letters/]]) {
        assert.throws(() => compile({ ...BASE, clips }), (e) => typeof e === "string" && message.test(e));
    }
    assert.throws(() => compile({ clips: '["a"]', output_dir: "/o" }), /manifest is required/);
});
