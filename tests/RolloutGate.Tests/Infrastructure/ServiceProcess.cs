using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>
/// The service's dll started as its own process (<c>dotnet RolloutGate.dll</c>) against a test database, as an operator
/// runs it: for what an in-process host cannot show, such as a process killed with SIGKILL, which releases nothing (no
/// hosted service stops, no claim or lease is given back, Quartz does not shut down). Settings are the same keys as
/// <see cref="RolloutGateHost"/>'s (':' for '__'), passed as environment variables; the tokens and the webhook secret too.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private const string Listening = "Now listening on: ";

    private readonly Process process;
    private readonly ConcurrentQueue<string> lines;

    private ServiceProcess(Process process, ConcurrentQueue<string> lines, Uri url)
    {
        this.process = process;
        this.lines = lines;
        Url = url;
    }

    public Uri Url { get; }

    /// <summary>What the process wrote to standard output and standard error, line by line.</summary>
    public IReadOnlyCollection<string> Lines => lines;

    /// <summary>Starts the service and waits until it listens (migrations applied, hosted services started).</summary>
    public static async Task<ServiceProcess> StartAsync(TestDatabase database, string runbooksFolder, IDictionary<string, string?>? settings = null)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "RolloutGate.dll"), "--urls", "http://127.0.0.1:0"])
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var values = new Dictionary<string, string?>
        {
            ["ConnectionStrings:RolloutGate"] = database.ConnectionString,
            ["RolloutGate:Webhook:Secret"] = RolloutGateHost.WebhookSecret,
            ["RolloutGate:Webhook:Tokens:0"] = RolloutGateHost.WebhookToken,
            ["RolloutGate:Api:ReaderTokens:0"] = RolloutGateHost.ReaderToken,
            ["RolloutGate:Api:OperatorTokens:0"] = RolloutGateHost.OperatorToken,
            ["RolloutGate:RunbooksPath"] = runbooksFolder,
            ["RolloutGate:Prometheus:Url"] = "http://127.0.0.1:9",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            values[key] = value;
        }

        foreach (var (key, value) in values)
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        var process = Process.Start(start)!;
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var lines = new ConcurrentQueue<string>();
        void Read(string? line)
        {
            if (line is null)
            {
                return;
            }

            lines.Enqueue(line);
            if (line.Contains(Listening, StringComparison.Ordinal))
            {
                listening.TrySetResult(new Uri(line[(line.IndexOf(Listening, StringComparison.Ordinal) + Listening.Length)..].Trim()));
            }
        }

        process.OutputDataReceived += (_, e) => Read(e.Data);
        process.ErrorDataReceived += (_, e) => Read(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var exited = process.WaitForExitAsync();
        try
        {
            if (await Task.WhenAny(listening.Task, exited).WaitAsync(TimeSpan.FromSeconds(90)) != listening.Task)
            {
                throw new InvalidOperationException("the service ended before it listened:\n" + string.Join('\n', lines));
            }
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            process.Dispose();
            throw;
        }

        return new ServiceProcess(process, lines, await listening.Task);
    }

    /// <summary>A client of this process, with a bearer token when given.</summary>
    public HttpClient Client(string? token = null)
    {
        var client = new HttpClient { BaseAddress = Url };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return client;
    }

    /// <summary>SIGKILL, as the OOM killer or <c>kubectl delete --force</c> sends it: nothing runs on the way out.</summary>
    public async Task KillAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        await process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        process.Dispose();
    }
}
