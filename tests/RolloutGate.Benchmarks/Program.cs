using RolloutGate.Benchmarks.Detection;

// One program, one benchmark per first argument, so benchmarks can be added side by side.
return args.FirstOrDefault() switch
{
    "detection" => DetectionBenchmark.Run(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: dotnet run -c Release --project tests/RolloutGate.Benchmarks -- detection [--data DIR]");
    return 2;
}
