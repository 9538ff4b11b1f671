using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Prometheus;

namespace RolloutGate.Tests.Operations;

/// <summary>
/// deploy/local/lib.sh, which run.sh and test.sh start Prometheus and Alertmanager with. On a Debian machine with systemd,
/// installing the prometheus and prometheus-alertmanager packages starts them as system services on 9090 and 9093, run.sh's
/// own ports: the script must stop there, naming the port, and not take that other server's answer for the one it started.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class LocalScriptTests
{
    private static readonly string Library = TestPaths.RepositoryFile("deploy/local/lib.sh");

    [Theory]
    [InlineData("start_prometheus", "Prometheus", "prometheus", "PROMETHEUS")]
    [InlineData("start_alertmanager", "Alertmanager", "prometheus-alertmanager", "ALERTMANAGER")]
    [InlineData("start_postgres", "PostgreSQL", "postgresql", "PG")]
    public async Task Start_OnAPortAnotherServerAnswers_FailsNamingThePort_AndStartsNothing(string function, string name, string service, string variable)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var other = builder.Build();
        other.MapGet("/-/ready", () => $"{name} is Ready.");
        await other.StartAsync();
        var port = new Uri(other.Urls.Single()).Port;
        using var folder = new TemporaryFolder("rolloutgate-lib-");
        var data = Path.Combine(folder.Folder, "data");

        var (exit, stderr) = await RunAsync($"source \"$0\"; {function} \"$1\" \"$2\"", Library, data, port.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.True(exit == 1, stderr);
        Assert.Contains($"something already listens on 127.0.0.1:{port}, where {name} was to start", stderr, StringComparison.Ordinal);
        Assert.Contains($"'systemctl disable --now {service}'", stderr, StringComparison.Ordinal);
        Assert.Contains($"(run.sh: ROLLOUTGATE_{variable}_PORT; test.sh: ROLLOUTGATE_TEST_{variable}_PORT)", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("started", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(data + ".pid"), "nothing was started, so there is no process to stop");
        Assert.False(File.Exists(Path.Combine(data, "PG_VERSION")), "no database cluster was created on the way");
    }

    /// <summary>
    /// The Prometheus and Alertmanager started are the ones on PATH, which ensure_packages took as installed. Before, a
    /// Prometheus of your own (a release's in /usr/local/bin) kept apt-get from installing Debian's, and run.sh then ran
    /// /usr/bin/prometheus, which was not there: "Prometheus exited during start-up". Here the program on PATH is a script
    /// that notes it ran, then runs the real one.
    /// </summary>
    [Theory]
    [InlineData("start_prometheus", "stop_prometheus", "prometheus")]
    [InlineData("start_alertmanager", "stop_alertmanager", "prometheus-alertmanager")]
    public async Task Start_RunsTheProgramOnThePath(string start, string stop, string program)
    {
        using var folder = new TemporaryFolder("rolloutgate-lib-");
        var bin = Directory.CreateDirectory(Path.Combine(folder.Folder, "bin")).FullName;
        var ran = Path.Combine(folder.Folder, "ran");
        var wrapper = await ProgramAsync(bin, program, $"#!/bin/sh\necho \"$0\" > '{ran}'\nexec /usr/bin/{program} \"$@\"\n");
        var port = new Uri(PrometheusTestServer.UnusedLoopbackUrl()).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

        var (exit, stderr) = await RunAsync(
            $"export PATH=\"$3:$PATH\"; source \"$0\"; {start} \"$1\" \"$2\" && {stop} \"$1\"", Library, Path.Combine(folder.Folder, "data"), port, bin);

        Assert.True(exit == 0, stderr);
        Assert.True(File.Exists(ran), $"{program} on PATH was not the one started: {stderr}");
        Assert.Equal(wrapper, (await File.ReadAllTextAsync(ran)).Trim());
    }

    /// <summary>
    /// A machine whose dotnet lacks the SDK global.json asks for (only .NET 8's, or the runtime alone): run.sh and test.sh
    /// stop before building and say which SDK is wanted and which are there. Before, the build failed with "A compatible
    /// .NET SDK was not found" in a log that run.sh only pointed to and test.sh did not name ("tests: 0 passed, 1 failed").
    /// </summary>
    [Fact]
    public async Task EnsureDotnet_WithoutTheSdkGlobalJsonAsksFor_FailsNamingItBeforeAnythingRuns()
    {
        var (exit, stderr) = await RunAsync("source \"$0\"; ensure_dotnet", Library);
        Assert.True(exit == 0, "this checkout's SDK is installed: " + stderr);

        using var folder = new TemporaryFolder("rolloutgate-lib-");
        var library = Path.Combine(folder.Folder, "deploy", "local", "lib.sh");
        Directory.CreateDirectory(Path.GetDirectoryName(library)!);
        File.Copy(Library, library);
        await File.WriteAllTextAsync(Path.Combine(folder.Folder, "global.json"), """{ "sdk": { "version": "99.0.100", "rollForward": "latestFeature" } }""");

        (exit, stderr) = await RunAsync("source \"$0\"; ensure_dotnet; echo reached >&2", library);

        Assert.True(exit == 1, stderr);
        Assert.Contains("error: the .NET SDK 99.0.100 or a later 99.0 one is required (global.json); this dotnet has ", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("reached", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// A build that fails: test.sh still ends with its "tests: 0 passed, 1 failed" line, and both scripts show what
    /// failed and name the whole log. A failure whose output holds no "error" or "warning" (no SDK that global.json
    /// allows, a feed that cannot be reached) ended test.sh at once, under set -e, with nothing but "building": the grep
    /// for those lines matched none. Its last lines are shown instead. Many errors: the first 40, and the line still comes.
    /// </summary>
    [Theory]
    [InlineData("A compatible .NET SDK was not found.\nRequested SDK version: 99.0.100", "Requested SDK version: 99.0.100")]
    [InlineData("many", "Broken.cs(1,1): error CS0001: number 1")]
    public async Task BuildReporting_ABuildThatFails_ShowsWhatFailedAndWhereTheLogIs_AndTheCallerGoesOn(string output, string shown)
    {
        using var folder = new TemporaryFolder("rolloutgate-lib-");
        var bin = Directory.CreateDirectory(Path.Combine(folder.Folder, "bin")).FullName;
        var said = output == "many"
            ? string.Join("\n", Enumerable.Range(1, 60).Select(i => $"Broken.cs(1,1): error CS0001: number {i}"))
            : output;
        await ProgramAsync(bin, "dotnet", $"#!/bin/sh\nprintf '{said}\\n'\nexit 1\n");
        var log = Path.Combine(folder.Folder, "build.log");

        // As test.sh calls it, under set -euo pipefail.
        var (exit, stderr) = await RunAsync(
            "set -euo pipefail; export PATH=\"$2:$PATH\"; source \"$0\"; if ! build_reporting \"$1\" RolloutGate.sln -c Release; then echo 'tests: 0 passed, 1 failed' >&2; exit 1; fi",
            Library, log, bin);

        Assert.Equal(1, exit);
        Assert.Contains(shown, stderr, StringComparison.Ordinal);
        Assert.Contains($"[rolloutgate] the whole build log: {log}\ntests: 0 passed, 1 failed", stderr, StringComparison.Ordinal);
        Assert.True(stderr.Split('\n').Count(line => line.Contains("error CS0001", StringComparison.Ordinal)) <= 40, stderr);
    }

    /// <summary>
    /// A second run.sh over the same folder names the first and how to stop it. A run.sh started in the background (`&amp;`)
    /// ignores Ctrl-C's SIGINT (run.sh's header), so "Ctrl-C in its terminal" alone left that one's owner stuck: the
    /// message gives the kill that stops it, which run.sh's SIGTERM trap handles.
    /// </summary>
    [Fact]
    public async Task ClaimFolder_HeldByARunningScript_NamesItsPidAndTheKillThatStopsIt()
    {
        using var folder = new TemporaryFolder("rolloutgate-lib-");
        // A bash whose command line names run.sh, as run.sh's own does (two commands: bash would exec a lone sleep).
        var start = new ProcessStartInfo("bash", ["-c", "sleep 60; exit 0", "deploy/local/run.sh"]) { UseShellExecute = false };
        using var owner = Process.Start(start)!;
        try
        {
            var pid = owner.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await File.WriteAllTextAsync(Path.Combine(folder.Folder, "owner.pid"), pid + "\n");

            var (exit, stderr) = await RunAsync("source \"$0\"; claim_folder \"$1\" deploy/local/run.sh", Library, folder.Folder);

            Assert.True(exit == 1, stderr);
            Assert.Contains($"another deploy/local/run.sh (pid {pid}) is running over {folder.Folder}; stop it first (Ctrl-C in its terminal, or kill {pid}: one started in the background ignores Ctrl-C)", stderr, StringComparison.Ordinal);
            Assert.Equal(pid, (await File.ReadAllTextAsync(Path.Combine(folder.Folder, "owner.pid"))).Trim());
        }
        finally
        {
            owner.Kill();
        }
    }

    /// <summary>
    /// The browser tests run the Chromium and chromedriver that test.sh took as installed: the first executable of that
    /// name on PATH, as <c>command -v</c> finds it (a file that is not executable is passed over), and test.sh installs the
    /// packages the tests name when they are missing. With /usr/bin fixed, a Chromium elsewhere on PATH (a snap's
    /// /snap/bin, a build of one's own) kept test.sh from installing Debian's, and the browser tests failed.
    /// </summary>
    [Theory]
    [InlineData("chromium")]
    [InlineData("chromedriver")]
    public async Task BrowserPrograms_AreFoundOnThePathAsTestShFindsThem(string command)
    {
        using var folder = new TemporaryFolder("rolloutgate-lib-");
        var notExecutable = Directory.CreateDirectory(Path.Combine(folder.Folder, "first")).FullName;
        await File.WriteAllTextAsync(Path.Combine(notExecutable, command), "#!/bin/sh\n");
        var bin = Directory.CreateDirectory(Path.Combine(folder.Folder, "bin")).FullName;
        var program = await ProgramAsync(bin, command, "#!/bin/sh\nexit 0\n");
        var path = $"{Path.Combine(folder.Folder, "missing")}:{notExecutable}:{bin}:/usr/bin:/bin";

        var (exit, stderr) = await RunAsync("PATH=\"$0\"; command -v \"$1\" >&2", path, command);

        Assert.Equal(0, exit);
        Assert.Equal(program, stderr.Trim());
        Assert.Equal(program, ProgramOnPath.Find(command, path));
        Assert.Null(ProgramOnPath.Find(command, $"{notExecutable}:{Path.Combine(folder.Folder, "missing")}"));
        var (expected, package) = new[] { WebDriverSession.Chromium, WebDriverSession.ChromeDriver }.Single(p => p.Command == command);
        Assert.Contains($" {expected}:{package}", await File.ReadAllTextAsync(TestPaths.RepositoryFile("deploy/local/test.sh")), StringComparison.Ordinal);
    }

    /// <summary>An executable script <paramref name="name"/> in <paramref name="bin"/> (put first on PATH), standing in for that program.</summary>
    private static async Task<string> ProgramAsync(string bin, string name, string script)
    {
        var path = Path.Combine(bin, name);
        await File.WriteAllTextAsync(path, script);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private static async Task<(int Exit, string Stderr)> RunAsync(string script, params string[] args)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        await stdout;
        return (process.ExitCode, await stderr);
    }
}
