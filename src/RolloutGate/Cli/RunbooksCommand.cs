using RolloutGate.Core.Runbooks;
using RolloutGate.Runbooks;

namespace RolloutGate.Cli;

/// <summary>
/// <c>runbooks validate PATH</c>: the same parser the service uses, for CI and editors, so a broken runbook is caught
/// before it is merged rather than refused at load time. Exit codes: 0 all valid, 1 any error, 2 usage or no such path.
/// </summary>
public static class RunbooksCommand
{
    public const string Usage = """
        usage:
          rolloutgate runbooks validate PATH    check a runbook file, or every *.yaml / *.yml in a folder
        """;

    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr) =>
        RunAsync(args, stdout, stderr, Environment.GetEnvironmentVariable);

    /// <summary>The command with the environment passed in, so tests choose the PWD relative paths are resolved against.</summary>
    internal static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, Func<string, string?> environment)
    {
        if (args is ["help" or "--help" or "-h", ..])
        {
            await stdout.WriteLineAsync(Usage);
            return 0;
        }

        if (args is not ["validate", var path])
        {
            await stderr.WriteLineAsync(Usage);
            return 2;
        }

        var resolved = CommandPaths.Resolve(path, environment);
        var files = FilesToValidate(path, resolved);
        if (files is null)
        {
            await stderr.WriteLineAsync($"runbooks validate: no such file or folder: {CommandPaths.Describe(path, resolved)}");
            return 2;
        }

        if (files.Count == 0)
        {
            await stderr.WriteLineAsync($"runbooks validate: no *.yaml or *.yml files in {path}");
            return 2;
        }

        var errors = new List<RunbookError>();
        var warnings = new List<RunbookError>();
        var valid = new List<(string File, Runbook Runbook)>();
        foreach (var (file, fullPath) in files)
        {
            var result = await RunbookFile.ParseAsync(fullPath, file);
            errors.AddRange(result.Errors);
            warnings.AddRange(result.Warnings);
            if (result.Runbook is { } runbook)
            {
                valid.Add((file, runbook));
            }
        }

        var conflicts = RunbookConflicts.Find(valid);
        errors.AddRange(conflicts);
        foreach (var error in errors)
        {
            await stdout.WriteLineAsync(error.ToString());
        }

        foreach (var warning in warnings)
        {
            await stdout.WriteLineAsync($"warning: {warning}");
        }

        foreach (var (file, runbook) in valid.Where(v => !conflicts.Any(c => c.File == v.File)))
        {
            await stdout.WriteLineAsync($"ok {file}: {runbook.Name} v{runbook.Version} sha256:{runbook.Sha256}");
        }

        var invalidFiles = errors.Select(e => e.File).Distinct(StringComparer.Ordinal).Count();
        // A warning does not make a file invalid, nor the exit status non-zero: the service loads such a runbook.
        await stdout.WriteLineAsync(
            $"{files.Count} runbook file{(files.Count == 1 ? "" : "s")} checked: {files.Count - invalidFiles} valid, {invalidFiles} invalid, {errors.Count} error{(errors.Count == 1 ? "" : "s")}" +
            (warnings.Count == 0 ? "" : $", {warnings.Count} warning{(warnings.Count == 1 ? "" : "s")}"));
        return errors.Count == 0 ? 0 : 1;
    }

    /// <summary>
    /// The file itself, or a folder's runbook files in ordinal order so output and conflict winners are stable; each as
    /// the user named it (for the output) and by its full path (<see cref="CommandPaths"/>: relative to where the
    /// command was run).
    /// </summary>
    private static List<(string File, string FullPath)>? FilesToValidate(string given, string resolved)
    {
        if (File.Exists(resolved))
        {
            return [(given, resolved)];
        }

        if (!Directory.Exists(resolved))
        {
            return null;
        }

        return RunbookFile.InFolder(resolved).Select(f => (Path.Join(given, Path.GetFileName(f)), f)).ToList();
    }
}
