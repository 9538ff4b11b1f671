using RolloutGate.Cli;

namespace RolloutGate.Tests.Cli;

/// <summary>Which command lines are commands and which start the service.</summary>
public sealed class CommandLineTests
{
    [Theory]
    [InlineData("runbook", "validate", "runbooks")]
    [InlineData("audits", "verify")]
    [InlineData("urls")]
    public async Task UnknownCommand_IsAUsageErrorNamingItAndTheCommands(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.True(CommandLine.IsCommand(args));
        var exit = await CommandLine.RunAsync(args, stdout, stderr);

        Assert.Equal(2, exit);
        Assert.StartsWith($"unknown command '{args[0]}'; the commands are runbooks, gate, audit, demo, backtest", stderr.ToString(), StringComparison.Ordinal);
        Assert.Equal("", stdout.ToString());
    }

    [Theory]
    [InlineData("--urls", "http://127.0.0.1:8080")]
    [InlineData("--urls=http://127.0.0.1:8080")]
    [InlineData("--environment", "Development", "--urls", "http://127.0.0.1:8080")]
    public void OptionsOnly_StartTheService(params string[] args) => Assert.False(CommandLine.IsCommand(args));

    [Fact]
    public void NoArguments_StartTheService() => Assert.False(CommandLine.IsCommand([]));

    [Theory]
    [InlineData("help")]
    [InlineData("--help")]
    [InlineData("-h")]
    public async Task Help_PrintsTheUsage(string help)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.True(CommandLine.IsCommand([help]));
        Assert.Equal(0, await CommandLine.RunAsync([help], stdout, stderr));
        Assert.Contains("rolloutgate runbooks validate PATH", stdout.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("runbooks", "--help")]
    [InlineData("gate", "--help")]
    [InlineData("audit", "--help")]
    [InlineData("audit", "-h")]
    [InlineData("demo", "--help")]
    [InlineData("demo", "help")]
    [InlineData("backtest", "--help")]
    public async Task EveryCommandsHelp_PrintsItsUsageOnStdoutAndSucceeds(string command, string help)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(0, await CommandLine.RunAsync([command, help], stdout, stderr));
        Assert.Contains($"rolloutgate {command} ", stdout.ToString(), StringComparison.Ordinal);
        Assert.Equal("", stderr.ToString());
    }

    [Theory]
    [InlineData("gate", "wait", "--help")]
    [InlineData("gate", "predeploy", "--service", "checkout", "--help")]
    [InlineData("audit", "events", "--service", "checkout", "-h")]
    [InlineData("runbooks", "validate", "--help")]
    [InlineData("backtest", "--runbook", "runbooks/checkout.yaml", "--help")]
    [InlineData("demo", "history", "--hours", "3", "--help")]
    public async Task HelpAfterASubcommandOrOptions_PrintsTheCommandsUsageOnStdoutAndDoesNothingElse(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(0, await CommandLine.RunAsync(args, stdout, stderr));
        Assert.Contains($"rolloutgate {args[0]} ", stdout.ToString(), StringComparison.Ordinal);
        Assert.Equal("", stderr.ToString());
    }

    /// <summary>
    /// A bad argument to <c>demo</c> is named with what it takes; the usage, printed after, says the default. It printed
    /// the usage alone, which did not say which word was wrong nor that 25 hours is what no --hours gives.
    /// </summary>
    [Theory]
    [InlineData("demo: --hours '400' is not a whole number from 1 to 336", "demo", "history", "--hours", "400")]
    [InlineData("demo: --hours 'a day' is not a whole number from 1 to 336", "demo", "history", "--hours", "a day")]
    [InlineData("demo: --hours needs a value", "demo", "history", "--hours")]
    [InlineData("demo: unknown argument '--days': history takes only --hours N", "demo", "history", "--days", "3")]
    [InlineData("demo: unknown argument '--days': history takes only --hours N", "demo", "history", "--hours", "3", "--days", "1")]
    [InlineData("demo: unknown subcommand 'histroy'; demo has one: history", "demo", "histroy")]
    public async Task DemoBadArguments_AreNamedWithWhatTheCommandTakes(string said, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(2, await CommandLine.RunAsync(args, stdout, stderr));
        Assert.Equal(
            $"{said}\nusage: rolloutgate demo history [--hours N]   (N from 1 to 336, default 25; samples are one minute apart)\n",
            stderr.ToString().ReplaceLineEndings("\n"));
        Assert.Equal("", stdout.ToString());
    }
}
