using RolloutGate.Cli;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Cli;

/// <summary><c>runbooks validate</c> as CI runs it: output lines and exit codes. No database is involved.</summary>
public sealed class RunbooksCommandTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("rolloutgate-runbooks-").FullName;
    private readonly StringWriter stdout = new();
    private readonly StringWriter stderr = new();

    public void Dispose()
    {
        Directory.Delete(folder, recursive: true);
        stdout.Dispose();
        stderr.Dispose();
    }

    [Fact]
    public async Task Validate_ShippedRunbooksFolder_ExitsZero()
    {
        var exit = await RunAsync("validate", TestPaths.RepositoryFile("runbooks"));

        Assert.True(exit == 0, stdout.ToString());
        var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(TestPaths.RepositoryFile("runbooks/checkout.yaml"))));
        Assert.Contains($"checkout v3 sha256:{sha}", stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains("payments v1 sha256:", stdout.ToString(), StringComparison.Ordinal);
        Assert.EndsWith("2 runbook files checked: 2 valid, 0 invalid, 0 errors" + Environment.NewLine, stdout.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// The sha256 printed is the file's, byte for byte, as sha256sum and the service (a deployment's runbook.sha256) give
    /// it, also for a file that is not all UTF-8 (a comment saved in Latin-1). Before, it was the hash of the text as .NET
    /// decoded it, each invalid byte replaced by U+FFFD: a sha256 that matched neither, so a pipeline comparing the two
    /// saw another runbook than the one it validated.
    /// </summary>
    [Fact]
    public async Task Validate_FileNotAllUtf8_PrintsTheSha256OfItsBytes()
    {
        var file = Path.Combine(folder, "latin1.yaml");
        var bytes = System.Text.Encoding.Latin1.GetBytes(Runbook("checkout", "production").Replace("kind: Runbook", "kind: Runbook # owned by Müller", StringComparison.Ordinal));
        File.WriteAllBytes(file, bytes);

        var exit = await RunAsync("validate", file);

        Assert.True(exit == 0, stdout.ToString());
        var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
        Assert.Contains($"ok {file}: checkout v1 sha256:{sha}", stdout.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_InvalidFile_PrintsFileLineReasonAndExitsOne()
    {
        var file = Write("broken.yaml", Runbook("checkout", "production").Replace("  owner: U1", "  ownr: U1", StringComparison.Ordinal));

        var exit = await RunAsync("validate", file);

        Assert.Equal(1, exit);
        Assert.Contains($"{file}:9: unknown field 'ownr' in spec", stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains($"{file}:7: missing required field 'owner' in spec", stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains("1 runbook file checked: 0 valid, 1 invalid, 2 errors", stdout.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_RunbookWithAWarning_SaysItAndIsStillValid()
    {
        var file = Write("short.yaml", Runbook("checkout", "production")
            .Replace("  watch:\n", "  watch:\n    baseline: 10m\n", StringComparison.Ordinal)
            .Replace("        max: 1\n", "        max: 1\n        maxIncrease: 20%\n", StringComparison.Ordinal));

        var exit = await RunAsync("validate", file);

        Assert.True(exit == 0, stdout.ToString());
        Assert.Contains($"warning: {file}:14: watch.baseline (10m) holds 10 intervals of 1m, fewer than the 12", stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains($"ok {file}: checkout v1", stdout.ToString(), StringComparison.Ordinal);
        Assert.EndsWith("1 runbook file checked: 1 valid, 0 invalid, 0 errors, 1 warning" + Environment.NewLine, stdout.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Empty lists reach the CI log as file:line: reason, each with what to write instead (RunbookParserErrorTests pins
    /// each text and that its example is valid); before, three of them said only "must not be empty".
    /// </summary>
    [Fact]
    public async Task Validate_EmptyLists_SayWhatToWriteAtTheirLines()
    {
        var file = Write("empty.yaml", Runbook("checkout", "production")
            .Replace("  environments: [production]", "  environments: []", StringComparison.Ordinal)
            .Replace("  watch:\n", """
                  preDeploy:
                    checks:
                      - name: alerts
                        alertmanager:
                          matchers: []
                  watch:

                """, StringComparison.Ordinal)
            .Replace("    metrics:\n      - name: errors\n", "    metrics: []\n", StringComparison.Ordinal)
            .Replace("        query: sum(rate(http_requests_total{code=~\"5..\"}[5m]))\n        max: 1\n", "", StringComparison.Ordinal));

        var exit = await RunAsync("validate", file);

        Assert.Equal(1, exit);
        var output = stdout.ToString();
        Assert.Contains($"{file}:8: environments needs at least one environment (it is an empty list); a runbook governs a change only in an environment it lists, "
            + "so with none it would govern no change. Give one, for example environments: [production] (the environment names the CD webhooks send)", output, StringComparison.Ordinal);
        Assert.Contains($"{file}:17: preDeploy.checks[0].alertmanager.matchers needs at least one matcher (it is an empty list); with none the check would match "
            + "every active alert, of every service, and fail while any of them fires. Give one, for example matchers: ['service=\"{{ service }}\"', 'severity=\"critical\"']",
            output, StringComparison.Ordinal);
        Assert.Contains($"{file}:19: watch.metrics needs at least one metric (it is an empty list); a watch with none would judge nothing after the deploy, "
            + "and never find a regression to roll back. Give one, for example metrics: [{name: errors, query: 'sum(rate(http_requests_total{code=~\"5..\"}[5m]))', max: 1}]",
            output, StringComparison.Ordinal);
        Assert.Contains("1 runbook file checked: 0 valid, 1 invalid, 3 errors", output, StringComparison.Ordinal);
    }

    /// <summary>
    /// A freeze whose lists are empty never fails: a warning at the empty list, not an error, so that a runbook in force
    /// (or on record) that has one still loads after an upgrade; the file is valid and the exit status 0.
    /// </summary>
    [Fact]
    public async Task Validate_FreezeWithEmptyWindows_IsValidWithAWarningAtTheList()
    {
        var file = Write("freeze.yaml", WithEmptyFreeze(Runbook("checkout", "production")));

        var exit = await RunAsync("validate", file);

        Assert.Equal(0, exit);
        var output = stdout.ToString();
        Assert.Contains($"warning: {file}:18: preDeploy.checks[0].freeze freezes nothing (windows is an empty list): this check never fails. "
            + "Give a weekly window", output, StringComparison.Ordinal);
        Assert.Contains("1 runbook file checked: 1 valid, 0 invalid, 0 errors, 1 warning", output, StringComparison.Ordinal);
    }

    /// <summary><paramref name="runbook"/> with a freeze check whose windows are an empty list, at line 18: a warning.</summary>
    private static string WithEmptyFreeze(string runbook) => runbook.Replace("  watch:\n", """
          preDeploy:
            checks:
              - name: freeze
                freeze:
                  timezone: Europe/Berlin
                  windows: []
          watch:

        """, StringComparison.Ordinal);

    /// <summary>An invalid file's warnings are printed beside its errors, so that one run says all there is to fix.</summary>
    [Fact]
    public async Task Validate_InvalidFileWithAWarning_PrintsBoth()
    {
        var file = Write("both.yaml", WithEmptyFreeze(Runbook("checkout", "production"))
            .Replace("  environments: [production]", "  environments: []", StringComparison.Ordinal));

        var exit = await RunAsync("validate", file);

        Assert.Equal(1, exit);
        var output = stdout.ToString();
        Assert.Contains($"{file}:8: environments needs at least one environment", output, StringComparison.Ordinal);
        Assert.Contains($"warning: {file}:18: preDeploy.checks[0].freeze freezes nothing", output, StringComparison.Ordinal);
        Assert.Contains("1 runbook file checked: 0 valid, 1 invalid, 1 error, 1 warning", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_FolderWithYamlAndYml_ChecksBothAndIgnoresOtherFiles()
    {
        Write("a.yaml", Runbook("alpha", "production"));
        Write("b.yml", Runbook("beta", "production"));
        Write("notes.txt", "not a runbook");

        var exit = await RunAsync("validate", folder);

        Assert.Equal(0, exit);
        Assert.Contains("2 runbook files checked: 2 valid, 0 invalid, 0 errors", stdout.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Each file that cannot be read is one error with its reason, and the others are checked. Before, a FIFO hung the
    /// command for ever (its open waits for a writer), given alone or in a folder; a folder named *.yaml was passed over
    /// in silence; a 3 GB file was "too long" for .NET's read of the whole file rather than over the 1 MiB limit.
    /// </summary>
    [Fact]
    public async Task Validate_FilesThatCannotBeRead_AreAnErrorEach_AndTheOthersChecked()
    {
        Write("a.yaml", Runbook("checkout", "production"));
        foreach (var kind in new[] { TestRunbooks.NotPermitted, TestRunbooks.Fifo, TestRunbooks.DanglingLink, TestRunbooks.Subfolder, TestRunbooks.TooLarge })
        {
            TestRunbooks.MakeUnreadable(Path.Combine(folder, kind.Replace(' ', '-') + ".yaml"), kind);
        }

        var exit = await Task.Run(() => RunAsync("validate", folder)).WaitAsync(TimeSpan.FromSeconds(30));
        var fifo = await Task.Run(() => RunAsync("validate", Path.Combine(folder, "fifo.yaml"))).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, exit);
        Assert.Equal(1, fifo);
        var output = stdout.ToString();
        Assert.Contains($"{Path.Combine(folder, "not-permitted.yaml")}:1: cannot read the file: Access to the path", output, StringComparison.Ordinal);
        Assert.Contains($"{Path.Combine(folder, "fifo.yaml")}:1: the file is empty, or not a regular file (a FIFO or a device is not read", output, StringComparison.Ordinal);
        Assert.Contains($"{Path.Combine(folder, "dangling-link.yaml")}:1: cannot read the file: it is a symbolic link to {Path.Combine(folder, "dangling-link.yaml.gone")}, which does not exist", output, StringComparison.Ordinal);
        Assert.Contains($"{Path.Combine(folder, "folder.yaml")}:1: it is a folder, not a file; runbooks are read from the files directly in the runbooks folder, not from its subfolders", output, StringComparison.Ordinal);
        Assert.Contains($"{Path.Combine(folder, "too-large.yaml")}:1: the file is 3221225472 bytes long; a runbook file is at most 1048576 bytes (1 MiB), and this line passes that size", output, StringComparison.Ordinal);
        Assert.Contains($"ok {Path.Combine(folder, "a.yaml")}: checkout v1", output, StringComparison.Ordinal);
        Assert.Contains("6 runbook files checked: 1 valid, 5 invalid, 5 errors", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_TwoRunbooksGoverningOneServiceAndEnvironment_ExitsOne()
    {
        Write("a.yaml", Runbook("checkout", "production"));
        var second = Write("b.yaml", Runbook("checkout", "production").Replace("name: checkout", "name: checkout-two", StringComparison.Ordinal));

        var exit = await RunAsync("validate", folder);

        Assert.Equal(1, exit);
        Assert.Contains(
            $"{second}:7: service 'checkout' in environment 'production' is already governed by {Path.Combine(folder, "a.yaml")}",
            stdout.ToString(),
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_TwoRunbooksWithOneName_ReportsTheLineOfMetadataName()
    {
        Write("cart.yaml", Runbook("cart", "production"));
        var second = Write("dupsvc.yaml", Runbook("cart", "production").Replace("  service: cart", "  service: dupsvc", StringComparison.Ordinal));

        var exit = await RunAsync("validate", folder);

        Assert.Equal(1, exit);
        Assert.Contains(
            $"{second}:4: runbook name 'cart' is already used by {Path.Combine(folder, "cart.yaml")}",
            stdout.ToString(),
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_SameServiceInOtherEnvironments_IsFine()
    {
        Write("a.yaml", Runbook("checkout", "production"));
        Write("b.yaml", Runbook("checkout", "staging").Replace("name: checkout", "name: checkout-staging", StringComparison.Ordinal));

        Assert.Equal(0, await RunAsync("validate", folder));
    }

    [Fact]
    public async Task Validate_MissingPath_ExitsTwo()
    {
        var exit = await RunAsync("validate", Path.Combine(folder, "nope"));

        Assert.Equal(2, exit);
        Assert.Contains("no such file or folder", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_EmptyFolder_ExitsTwo()
    {
        Assert.Equal(2, await RunAsync("validate", folder));
        Assert.Contains("no *.yaml or *.yml files", stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData]
    [InlineData("validate")]
    [InlineData("check", "runbooks")]
    [InlineData("validate", "a", "b")]
    public async Task Run_BadUsage_PrintsUsageAndExitsTwo(params string[] args)
    {
        Assert.Equal(2, await RunAsync(args));
        Assert.Contains("runbooks validate PATH", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CommandLine_RoutesRunbooksVerb()
    {
        var file = Write("a.yaml", Runbook("checkout", "production"));

        Assert.True(CommandLine.IsCommand(["runbooks", "validate", file]));
        Assert.Equal(0, await CommandLine.RunAsync(["runbooks", "validate", file], stdout, stderr));
        Assert.Contains("runbooks validate PATH", CommandLine.Usage, StringComparison.Ordinal);
    }

    private Task<int> RunAsync(params string[] args) => RunbooksCommand.RunAsync(args, stdout, stderr);

    [Fact]
    public async Task Validate_RelativeFolder_IsReadFromTheShellsDirectoryAndPrintedAsGiven()
    {
        // As `dotnet run --project src/RolloutGate -- runbooks validate runbooks` from the repository root: the program
        // runs in src/RolloutGate, the shell's PWD names the root.
        Directory.CreateDirectory(Path.Combine(folder, "runbooks"));
        Write(Path.Combine("runbooks", "checkout.yaml"), Runbook("checkout", "production"));
        string? Environment(string name) => name == "PWD" ? folder : null;

        var exit = await RunbooksCommand.RunAsync(["validate", "runbooks"], stdout, stderr, Environment);
        var missing = await RunbooksCommand.RunAsync(["validate", "runbook"], stdout, stderr, Environment);

        Assert.True(exit == 0, stdout.ToString() + stderr);
        Assert.StartsWith($"ok {Path.Join("runbooks", "checkout.yaml")}: checkout v", stdout.ToString(), StringComparison.Ordinal);
        Assert.Equal(2, missing);
        Assert.Equal($"runbooks validate: no such file or folder: runbook (looked for {Path.Combine(folder, "runbook")})", stderr.ToString().Trim());
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static string Runbook(string service, string environment) => $"""
        apiVersion: rolloutgate/v1
        kind: Runbook
        metadata:
          name: {service}
          version: 1
        spec:
          service: {service}
          environments: [{environment}]
          owner: U1
          decisionChannel: C1
          mesh:
            provider: none
          watch:
            metrics:
              - name: errors
                query: sum(rate(http_requests_total{"{"}code=~"5.."{"}"}[5m]))
                max: 1

        """;
}
