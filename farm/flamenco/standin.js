// Stand-ins for the globals Flamenco's job compiler gives a job type (author, path, print, the job object), so that
// hand_capture.js compiles under Node: in hand_capture.test.js (node --test), and for the Python fake worker
// (tests/test_farm.py):  node farm/flamenco/standin.js SETTINGS.json  prints the compiled job as JSON.
// The job's form: {tasks: [{name, type, commands: [{name, parameters}], dependencies: [task names]}]}.
"use strict";
const fs = require("fs");
const nodePath = require("path");
const vm = require("vm");

const SOURCE = nodePath.join(__dirname, "hand_capture.js");

function standins(printed) {
    const author = {
        Task(name, type) {
            return {
                name, type, commands: [], dependencies: [],
                addCommand(cmd) { this.commands.push(cmd); },
                addDependency(task) { this.dependencies.push(task); },
            };
        },
        Command(name, parameters) { return { name, parameters }; },
    };
    // Flamenco's `path` works on forward-slash paths whatever the Manager's platform.
    const path = {
        join: (...parts) => nodePath.posix.join(...parts),
        dirname: (p) => nodePath.posix.dirname(p),
        basename: (p) => nodePath.posix.basename(p),
        stem: (p) => nodePath.posix.basename(p, nodePath.posix.extname(p)),
    };
    return { author, path, print: (...args) => printed.push(args.join(" ")) };
}

// Compile a job of this type with `settings` (defaults filled in from JOB_TYPE as Flamenco does); returns
// {jobType, tasks, printed}. A compile error (a thrown string) propagates.
function compile(settings, source = SOURCE) {
    const printed = [];
    const context = vm.createContext(standins(printed));
    vm.runInContext(fs.readFileSync(source, "utf8") + "\n;globalThis.JOB_TYPE = JOB_TYPE;", context,
                    { filename: source });
    const full = {};
    for (const s of context.JOB_TYPE.settings) {
        if (s.default !== undefined) {
            full[s.key] = s.default;
        }
    }
    Object.assign(full, settings);
    for (const s of context.JOB_TYPE.settings) {
        if (s.required && (full[s.key] === undefined || full[s.key] === "")) {
            throw `setting ${s.key} is required`;
        }
    }
    const tasks = [];
    const job = { name: "hand capture test", settings: full, created: new Date(0), addTask: (t) => tasks.push(t) };
    context.compileJob(job);
    // Through JSON: plain objects of this realm (and what the Manager would store).
    return JSON.parse(JSON.stringify({
        jobType: context.JOB_TYPE,
        printed,
        tasks: tasks.map((t) => ({
            name: t.name, type: t.type,
            commands: t.commands.map((c) => ({ name: c.name, parameters: c.parameters })),
            dependencies: t.dependencies.map((d) => d.name),
        })),
    }));
}

module.exports = { compile, SOURCE };

if (require.main === module) {
    const settings = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
    try {
        process.stdout.write(JSON.stringify({ tasks: compile(settings).tasks }) + "\n");
    } catch (e) {
        process.stderr.write(`error: ${e}\n`);
        process.exit(2);
    }
}
