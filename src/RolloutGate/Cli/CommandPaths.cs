namespace RolloutGate.Cli;

/// <summary>
/// Where a relative path on the command line points: the folder the user ran the command from. <c>dotnet run</c> starts
/// the program in the project's folder (src/RolloutGate), not there, but passes the shell's PWD on; so PWD comes first
/// when it names an existing folder by its full path, and the process's working directory otherwise.
/// </summary>
public static class CommandPaths
{
    /// <summary>The full path of <paramref name="path"/>; an absolute path stays as it is.</summary>
    public static string Resolve(string path, Func<string, string?> environment) => Path.GetFullPath(path, BaseFolder(environment));

    /// <summary>
    /// How an error names a path: as given, followed by the full path looked for when the two differ, so that a relative
    /// path resolved against an unexpected folder shows where it was looked for.
    /// </summary>
    public static string Describe(string given, string resolved) =>
        string.Equals(given, resolved, StringComparison.Ordinal) ? given : $"{given} (looked for {resolved})";

    /// <summary>The folder relative paths are read from: PWD when it names an existing folder by its full path, else the working directory.</summary>
    public static string BaseFolder(Func<string, string?> environment) =>
        environment("PWD") is { } pwd && Path.IsPathFullyQualified(pwd) && Directory.Exists(pwd) ? pwd : Directory.GetCurrentDirectory();
}
