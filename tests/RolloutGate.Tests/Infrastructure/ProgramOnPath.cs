namespace RolloutGate.Tests.Infrastructure;

/// <summary>
/// A program found as a shell's <c>command -v</c> finds it: the first file of that name, executable, in the folders of
/// PATH (an empty entry is the current folder). deploy/local/test.sh takes a program as installed when <c>command -v</c>
/// finds it, so the tests must run that one: with a fixed /usr/bin path, a Chromium installed elsewhere on PATH satisfied
/// test.sh, which then installed nothing, and every browser test failed for want of /usr/bin/chromium.
/// </summary>
public static class ProgramOnPath
{
    private const UnixFileMode AnyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>The full path of <paramref name="name"/> in <paramref name="path"/> (this process's PATH when null); null when none.</summary>
    public static string? Find(string name, string? path = null)
    {
        foreach (var folder in (path ?? Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            var candidate = Path.GetFullPath(Path.Combine(folder.Length == 0 ? "." : folder, name));
            if (File.Exists(candidate) && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(candidate) & AnyExecute) != 0))
            {
                return candidate;
            }
        }

        return null;
    }
}
