using RolloutGate.Benchmarks.Baselines;
using RolloutGate.Benchmarks.Detection;
using RolloutGate.Benchmarks.Reports;
using RolloutGate.Benchmarks.Retention;
using RolloutGate.Benchmarks.Slack;
using RolloutGate.Benchmarks.Watches;
using RolloutGate.Benchmarks.Webhooks;

// One program, one benchmark per first argument, so benchmarks can be added side by side.
return args.FirstOrDefault() switch
{
    "detection" => DetectionBenchmark.Run(args[1..]),
    "heteroscedastic" => HeteroscedasticBenchmark.Run(args[1..]),
    "elasticity" => ElasticityCoverageBenchmark.Run(args[1..]),
    "baselines" => BaselineBenchmark.Run(args[1..]),
    "webhooks" => await WebhookBenchmark.RunAsync(args[1..]),
    "reports" => await ReportsBenchmark.RunAsync(args[1..]),
    "verify" => await ReportsBenchmark.RunAsync(args[1..], verify: true),
    "slack" => await SlackPressBenchmark.RunAsync(args[1..]),
    "retention" => await RetentionBenchmark.RunAsync(args[1..]),
    "watches" => await WatchScaleBenchmark.RunAsync(args[1..]),
    "watch-series" => WatchScaleBenchmark.Series(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        usage: dotnet run -c Release --project tests/RolloutGate.Benchmarks -- detection [--data DIR] [--nab-baseline 7d|24h] [--max-increase 10%]
               dotnet run -c Release --project tests/RolloutGate.Benchmarks -- heteroscedastic [--seeds 240]
               dotnet run -c Release --project tests/RolloutGate.Benchmarks -- elasticity [--seeds 300]
               dotnet run -c Release --project tests/RolloutGate.Benchmarks -- baselines
               tests/RolloutGate.Benchmarks/run-with-postgres.sh webhooks [--seconds 20] [--concurrency 16]
               tests/RolloutGate.Benchmarks/run-with-postgres.sh reports [--events 1000000]
               tests/RolloutGate.Benchmarks/run-with-postgres.sh verify [--events 1000000]
               tests/RolloutGate.Benchmarks/run-with-postgres.sh retention [--deployments 200]
               tests/RolloutGate.Benchmarks/run-with-postgres.sh slack [--presses 400] [--concurrency 16] [--webhook-workers 8]
               tests/RolloutGate.Benchmarks/run-watches.sh [--watches 100,1000] [--minutes 3] [--burst N] [--answers R] [--regress P% [--regress-in M]] [--set RolloutGate:Watch:Key=Value]
        """);
    return 2;
}
