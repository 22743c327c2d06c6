// Hand Capture batch as a Flamenco v3 job type (plain ES2015; Flamenco's job compiler runs it in its Manager).
// Install: copy this file into the Manager's `scripts/` folder (next to flamenco-manager); the job type is
// "hand-capture". Set-up, variables and submission: farm/README.md.
//
// Per clip of the manifest, two tasks:
//   capture-<clip>  exec  {python} <handcap>/farm/handcap.py batch MANIFEST --out OUT --only <clip> --quiet
//                   (task type `capture_task_type`: "misc", or a type only GPU workers list, e.g. "hand-capture-gpu")
//   keying-<clip>   exec  the same with --blend --blender {blender}: keys OUT/<clip>/clip.blend in headless Blender
//                   from the clip file (task type "blender"), after capture-<clip>.
// Both are the batch CLI's own per-clip run, so a task that runs again (retry, requeue) skips what is done, and
// the output folder is exactly what `python -m core batch` makes.

const JOB_TYPE = {
    label: "Hand Capture",
    description: "Capture hands from the clips of a manifest, then key each into a .blend",
    settings: [
        { key: "manifest", type: "string", subtype: "file_path", required: true,
          description: "Batch manifest (JSON, TOML or CSV) on shared storage" },
        { key: "clips", type: "string", required: true,
          description: "The manifest's clip names as a JSON list: python -m core batch MANIFEST --out OUT --list" },
        { key: "output_dir", type: "string", subtype: "dir_path", required: true,
          description: "Output folder on shared storage: one folder per clip, summary.jsonl" },
        { key: "root", type: "string", subtype: "dir_path", required: false, default: "",
          description: "Folder the manifest's paths are relative to (empty: the manifest's root key, else its folder)" },
        { key: "handcap", type: "string", required: true, default: "{handcap}",
          description: "Hand Capture's code folder (holding core/ and farm/) as workers see it" },
        { key: "python", type: "string", required: true, default: "{handcap_python}",
          description: "Python with Hand Capture's requirements, as workers see it" },
        { key: "blender", type: "string", required: true, default: "{blender}",
          description: "Blender executable for the keying tasks" },
        { key: "keying", type: "bool", default: true, description: "Add a Blender keying task per clip" },
        { key: "fbx", type: "bool", default: false, description: "The keying tasks also write FBX files" },
        { key: "capture_task_type", type: "string", default: "misc",
          description: "Task type of the capture tasks (a type only GPU workers list routes them there)" },
    ]
};

function compileJob(job) {
    const settings = job.settings;
    const clips = clipNames(settings.clips);
    for (const name of clips) {
        const capture = author.Task(`capture-${name}`, settings.capture_task_type || "misc");
        capture.addCommand(author.Command("exec", {
            exe: settings.python,
            args: batchArgs(settings, name, []),
        }));
        job.addTask(capture);
        if (!settings.keying) {
            continue;
        }
        const keying = author.Task(`keying-${name}`, "blender");
        const extra = ["--blend", "--blender", settings.blender];
        if (settings.fbx) {
            extra.push("--fbx");
        }
        keying.addCommand(author.Command("exec", {
            exe: settings.python,
            args: batchArgs(settings, name, extra),
        }));
        keying.addDependency(capture);
        job.addTask(keying);
    }
}

// The batch CLI's command line for one clip (after the Python executable).
function batchArgs(settings, name, extra) {
    const args = [path.join(settings.handcap, "farm", "handcap.py"), "batch", settings.manifest,
                  "--out", settings.output_dir, "--only", name, "--quiet"];
    if (settings.root) {
        args.push("--root", settings.root);
    }
    return args.concat(extra);
}

// The "clips" setting: a JSON list of distinct names made of letters, digits, ".", "_" and "-".
function clipNames(text) {
    let names;
    try {
        names = JSON.parse(text);
    } catch (e) {
        throw `clips must be a JSON list of clip names (python -m core batch MANIFEST --out OUT --list): ${e}`;
    }
    if (!Array.isArray(names) || names.length === 0) {
        throw "clips must be a non-empty JSON list of clip names";
    }
    const seen = {};
    for (const name of names) {
        if (typeof name !== "string" || !/^[A-Za-z0-9._-]+$/.test(name) || name === "." || name === "..") {
            throw `clip name ${JSON.stringify(name)} must be letters, digits, '.', '_' or '-'`;
        }
        if (seen[name]) {
            throw `clip name ${name} is listed twice`;
        }
        seen[name] = true;
    }
    return names;
}
