namespace RolloutGate.Cli;

/// <summary>
/// The service is also its own CLI: <c>runbooks validate</c>, <c>backtest</c> and <c>gate</c>. A command line that
/// starts with an option (such as <c>--urls</c>) belongs to the web host; any other first word is a command, and an
/// unknown one is a usage error, so a mistyped command never starts (and migrates) the service.
/// </summary>
public static class CommandLine
{
    private static readonly Dictionary<string, Func<string[], TextWriter, TextWriter, Task<int>>> Verbs = new(StringComparer.Ordinal)
    {
        ["runbooks"] = RunbooksCommand.RunAsync,
        ["gate"] = GateCommand.RunAsync,
        ["audit"] = AuditCommand.RunAsync,
        ["demo"] = DemoCommand.RunAsync,
        ["backtest"] = BacktestCommand.RunAsync,
    };

    public static bool IsCommand(string[] args) =>
        args.Length > 0 && (!args[0].StartsWith('-') || IsHelp(args[0]));

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args[0] is "help" or "--help" or "-h")
        {
            await stdout.WriteLineAsync(Usage);
            return 0;
        }

        if (!Verbs.TryGetValue(args[0], out var verb))
        {
            await stderr.WriteLineAsync($"unknown command '{args[0]}'; the commands are {string.Join(", ", Verbs.Keys)}");
            await stderr.WriteLineAsync(Usage);
            return 2;
        }

        // `gate wait --help`, `audit events --service s -h`: help wherever it is asked for, as git and kubectl give it, not
        // a usage error for an unknown option (or, for `runbooks validate --help`, a missing file named --help).
        return await verb(args[1..].Any(IsHelp) ? ["--help"] : args[1..], stdout, stderr);
    }

    private static bool IsHelp(string arg) => arg is "--help" or "-h";

    public const string Usage = """
        usage:
          rolloutgate [--urls http://127.0.0.1:8080]        run the service
          rolloutgate runbooks validate PATH                check a runbook file or a folder of runbooks (exit 0 valid, 1 errors, 2 usage)
          rolloutgate gate EVENT --deployment-id ID --service S --environment E ...   send a CD webhook (exit 0 allow, 1 deny, 2 no answer)
          rolloutgate gate wait --deployment-id ID --for 30m ...                    hold a pipeline while the watch runs (exit 0 promote, 1 regressed, 2 no answer)
          rolloutgate audit events|verify|summary [filters] [--csv]               query the audit trail (reader token in ROLLOUTGATE_READER_TOKEN)
          rolloutgate demo history [--hours N]                                     the demo workload's history as OpenMetrics (run.sh backfills it)
          rolloutgate backtest --runbook FILE --deployed-at ISO8601 (--prometheus URL | --csv FILE) [--environment ENV]
                                                            replay the watch on recorded data; prints the decision as JSON
        """;
}
