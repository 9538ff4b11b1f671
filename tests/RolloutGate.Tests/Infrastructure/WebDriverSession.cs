using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>
/// Debian's headless Chromium driven by Debian's chromedriver over W3C WebDriver (plain HTTP and JSON, no client
/// library): one driver process on a free loopback port and one browser session with a throw-away profile, both ended
/// on dispose. Elements are found by CSS selector; waits are explicit (<see cref="WaitForAsync"/> polls), never sleeps.
/// deploy/local/test.sh installs both packages unless their commands are on PATH already, and the ones on PATH are run.
/// </summary>
public sealed partial class WebDriverSession : IAsyncDisposable
{
    /// <summary>The browser's command, and the Debian package deploy/local/test.sh installs when it is not on PATH.</summary>
    public static readonly (string Command, string Package) Chromium = ("chromium", "chromium");

    /// <summary>The driver's command, and the Debian package deploy/local/test.sh installs when it is not on PATH.</summary>
    public static readonly (string Command, string Package) ChromeDriver = ("chromedriver", "chromium-driver");

    /// <summary>The W3C name of the key that holds an element's reference.</summary>
    private const string ElementKey = "element-6066-11e4-a52e-4f735466cecf";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);

    /// <summary>How long <see cref="WaitForAsync"/> polls unless told: a loaded machine renders a page many times slower.</summary>
    private static readonly TimeSpan DefaultWait = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    private readonly Process driver;
    private readonly List<string> driverOutput;
    private readonly DirectoryInfo profile;
    private readonly HttpClient http;
    private string session = "";

    private WebDriverSession(Process driver, List<string> driverOutput, DirectoryInfo profile, int port)
    {
        this.driver = driver;
        this.driverOutput = driverOutput;
        this.profile = profile;
        http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Starts chromedriver and a headless Chromium with a window of the given size.</summary>
    public static async Task<WebDriverSession> StartAsync(int width = 1280, int height = 900)
    {
        var chromium = Installed(Chromium);
        var start = new ProcessStartInfo(Installed(ChromeDriver)) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("--port=0");
        var output = new List<string>();
        var port = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var driver = new Process { StartInfo = start };
        void OnLine(object sender, DataReceivedEventArgs line)
        {
            if (line.Data is null)
            {
                return;
            }

            lock (output)
            {
                output.Add(line.Data);
            }

            if (StartedPattern().Match(line.Data) is { Success: true } started)
            {
                port.TrySetResult(int.Parse(started.Groups[1].Value, CultureInfo.InvariantCulture));
            }
        }

        driver.OutputDataReceived += OnLine;
        driver.ErrorDataReceived += OnLine;
        driver.Start();
        driver.BeginOutputReadLine();
        driver.BeginErrorReadLine();
        var profile = Directory.CreateTempSubdirectory("rolloutgate-chromium-");
        WebDriverSession? session = null;
        try
        {
            session = new WebDriverSession(driver, output, profile, await port.Task.WaitAsync(StartTimeout));
            await session.NewSessionAsync(chromium, width, height);
            return session;
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or HttpRequestException or JsonException)
        {
            var log = string.Join('\n', session?.DriverOutput ?? []);
            if (session is not null)
            {
                await session.DisposeAsync();
            }
            else
            {
                driver.Kill(entireProcessTree: true);
                driver.Dispose();
                profile.Delete(recursive: true);
            }

            throw new InvalidOperationException($"chromedriver and chromium did not start a session: {e.Message}\n{log}", e);
        }
    }

    private IReadOnlyList<string> DriverOutput
    {
        get
        {
            lock (driverOutput)
            {
                return [.. driverOutput];
            }
        }
    }

    /// <summary>The program's path on PATH, as deploy/local/test.sh finds it (<c>command -v</c>); the test fails naming the package when it is not there.</summary>
    private static string Installed((string Command, string Package) program)
    {
        var found = ProgramOnPath.Find(program.Command);
        Assert.True(found is not null,
            $"{program.Command} is not on PATH ({Environment.GetEnvironmentVariable("PATH")}): apt-get install -y {program.Package} (deploy/local/test.sh does)");
        return found;
    }

    private async Task NewSessionAsync(string chromium, int width, int height)
    {
        string[] args =
        [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", $"--user-data-dir={profile.FullName}",
            $"--window-size={width},{height}",
        ];
        var created = await CommandAsync(HttpMethod.Post, "session", new
        {
            capabilities = new { alwaysMatch = new Dictionary<string, object> { ["goog:chromeOptions"] = new { binary = chromium, args } } },
        });
        session = created.GetProperty("sessionId").GetString()!;
    }

    /// <summary>Loads the address and returns once the page has loaded.</summary>
    public Task NavigateAsync(string url) => CommandAsync(HttpMethod.Post, $"session/{session}/url", new { url });

    public async Task<Uri> UrlAsync() => new((await CommandAsync(HttpMethod.Get, $"session/{session}/url")).GetString()!);

    /// <summary>The elements that match a CSS selector now (none is not an error).</summary>
    public async Task<IReadOnlyList<string>> FindAllAsync(string css)
    {
        var found = await CommandAsync(HttpMethod.Post, $"session/{session}/elements", new { @using = "css selector", value = css });
        return [.. found.EnumerateArray().Select(e => e.GetProperty(ElementKey).GetString()!)];
    }

    /// <summary>Polls until an element matches the selector (and, when given, its text contains <paramref name="text"/>); returns the first.</summary>
    public async Task<string> WaitForAsync(string css, string? text = null, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        var lastText = "";
        while (true)
        {
            foreach (var element in await FindAllAsync(css))
            {
                try
                {
                    lastText = await TextAsync(element);
                }
                catch (InvalidOperationException e) when (e.Message.StartsWith("stale element reference", StringComparison.Ordinal))
                {
                    continue;
                }

                if (text is null || lastText.Contains(text, StringComparison.Ordinal))
                {
                    return element;
                }
            }

            if (clock.Elapsed > (timeout ?? DefaultWait))
            {
                throw new TimeoutException($"no element matches '{css}'{(text is null ? "" : $" with text '{text}' (last seen: '{lastText}')")} " +
                                           $"after {clock.Elapsed.TotalSeconds:0.#} s at {await UrlAsync()}");
            }

            await Task.Delay(PollInterval);
        }
    }

    public Task ClickAsync(string element) => CommandAsync(HttpMethod.Post, $"session/{session}/element/{element}/click", new { });

    public Task TypeAsync(string element, string text) => CommandAsync(HttpMethod.Post, $"session/{session}/element/{element}/value", new { text });

    /// <summary>The element's rendered text, as the user sees it.</summary>
    public async Task<string> TextAsync(string element) => (await CommandAsync(HttpMethod.Get, $"session/{session}/element/{element}/text")).GetString()!;

    /// <summary>Runs a function body in the page (<c>arguments[0]</c>… are <paramref name="args"/>) and returns what it returns.</summary>
    public Task<JsonElement> ExecuteAsync(string script, params object[] args) =>
        CommandAsync(HttpMethod.Post, $"session/{session}/execute/sync", new { script, args });

    /// <summary>Saves the whole page as a PNG (the window first grows to the page's height) and returns its bytes.</summary>
    public async Task<byte[]> ScreenshotAsync(string path)
    {
        var page = await ExecuteAsync("""
            const root = document.documentElement;
            return { width: Math.max(window.outerWidth, root.scrollWidth), height: root.scrollHeight + window.outerHeight - window.innerHeight };
            """);
        await CommandAsync(HttpMethod.Post, $"session/{session}/window/rect",
            new { width = page.GetProperty("width").GetInt32(), height = page.GetProperty("height").GetInt32() });
        var png = Convert.FromBase64String((await CommandAsync(HttpMethod.Get, $"session/{session}/screenshot")).GetString()!);
        await File.WriteAllBytesAsync(path, png);
        return png;
    }

    /// <summary>Sends one WebDriver command and returns its <c>value</c>; a WebDriver error becomes an exception naming it.</summary>
    private async Task<JsonElement> CommandAsync(HttpMethod method, string path, object? body = null)
    {
        // chromedriver's HTTP server wants a Content-Length: no chunked body (which JsonContent would send).
        using var request = new HttpRequestMessage(method, path)
        {
            Content = body is null ? null : new StringContent(JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json"),
        };
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        using var json = JsonDocument.Parse(text);
        var value = json.RootElement.GetProperty("value").Clone();
        if (!response.IsSuccessStatusCode)
        {
            var error = value.ValueKind == JsonValueKind.Object && value.TryGetProperty("error", out var e) ? e.GetString() : null;
            var message = value.ValueKind == JsonValueKind.Object && value.TryGetProperty("message", out var m) ? m.GetString() : text;
            throw new InvalidOperationException($"{error ?? "error"}: {method} {path} answered {(int)response.StatusCode}: {message}");
        }

        return value;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (session.Length > 0)
            {
                await CommandAsync(HttpMethod.Delete, $"session/{session}");
            }
        }
        catch (Exception e) when (e is InvalidOperationException or HttpRequestException or TaskCanceledException)
        {
            // The driver is killed below either way.
        }

        http.Dispose();
        if (!driver.HasExited)
        {
            driver.Kill(entireProcessTree: true);
            await driver.WaitForExitAsync();
        }

        driver.Dispose();
        profile.Delete(recursive: true);
    }

    [GeneratedRegex(@"started successfully on port (\d+)")]
    private static partial Regex StartedPattern();
}
