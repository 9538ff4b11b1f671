using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using RolloutGate.Audit;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;

namespace RolloutGate.Cli;

/// <summary>
/// <c>audit events|verify|summary</c>: the audit queries of CONTRACT section 7 for auditors without a browser.
/// It asks a running RolloutGate over HTTP with a reader token from <c>ROLLOUTGATE_READER_TOKEN</c> (never an argument,
/// which would show in process lists). Exit codes: 0 answered (and, for verify, the chain holds), 1 the chain is
/// broken, 2 no usable answer.
/// </summary>
public static class AuditCommand
{
    public const string TokenVariable = "ROLLOUTGATE_READER_TOKEN";
    public const int DefaultLimit = 1000;
    private const int PageSize = 500;

    public const string Usage = """
        usage: rolloutgate audit events [--deployment-id ID] [--service S] [--actor A] [--type T] [--from ISO8601] [--to ISO8601] [--limit N] [--csv] [--url URL]
               rolloutgate audit verify [--anchor ID:HASH] [--url URL]
               rolloutgate audit summary [--service S] [--environment E] [--from ISO8601] [--to ISO8601] [--csv] [--url URL]
        --limit N: the most events to print, a positive whole number, default 1000 (the server is asked a page at a time).
        --from and --to: ISO 8601 (2026-11-21T10:00:00Z, ...+01:00; UTC without an offset; a date alone at its midnight UTC).
        --csv prints the server's CSV instead of the aligned table.
        The reader token comes from ROLLOUTGATE_READER_TOKEN; the URL (http or https) from --url, ROLLOUTGATE_URL or http://127.0.0.1:8080.
        verify prints the chain's head as ID:HASH: keep it where the database's writers cannot change it, and a later
        verify --anchor ID:HASH checks that the trail up to that event is still the same.
        """;

    /// <summary>
    /// The options each command reads. The server ignores a query parameter it does not know, so an option another command
    /// takes (<c>summary --actor bob</c>) would print an answer as if it had been applied.
    /// </summary>
    private static readonly Dictionary<string, string[]> OptionsOf = new(StringComparer.Ordinal)
    {
        ["events"] = ["--deployment-id", "--service", "--actor", "--type", "--from", "--to", "--limit", "--csv", "--url"],
        ["verify"] = ["--anchor", "--url"],
        ["summary"] = ["--service", "--environment", "--from", "--to", "--csv", "--url"],
    };

    private static readonly Dictionary<string, string> QueryOptions = new(StringComparer.Ordinal)
    {
        ["--deployment-id"] = "deploymentId",
        ["--service"] = "service",
        ["--environment"] = "environment",
        ["--actor"] = "actor",
        ["--type"] = "type",
        ["--from"] = "from",
        ["--to"] = "to",
    };

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        return await RunAsync(args, stdout, stderr, Environment.GetEnvironmentVariable, http);
    }

    internal static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, Func<string, string?> environment, HttpClient http)
    {
        if (args is ["help" or "--help" or "-h", ..])
        {
            await stdout.WriteLineAsync(Usage);
            return 0;
        }

        if (args.Length == 0 || args[0] is not ("events" or "verify" or "summary"))
        {
            await stderr.WriteLineAsync(Usage);
            return 2;
        }

        var query = new List<KeyValuePair<string, string>>();
        string? anchor = null;
        var csv = false;
        var limit = DefaultLimit;
        string? urlOption = null;
        for (var i = 1; i < args.Length; i++)
        {
            var option = args[i];
            if (!OptionsOf[args[0]].Contains(option, StringComparer.Ordinal) && OptionsOf.Values.Any(o => o.Contains(option, StringComparer.Ordinal)))
            {
                await stderr.WriteLineAsync($"{option} does not apply to audit {args[0]}\n{Usage}");
                return 2;
            }

            if (option == "--csv")
            {
                csv = true;
                continue;
            }

            if (i + 1 >= args.Length)
            {
                await stderr.WriteLineAsync($"{option} needs a value\n{Usage}");
                return 2;
            }

            var value = args[++i];
            if (option == "--url")
            {
                urlOption = value;
            }
            else if (option == "--anchor")
            {
                if (!AuditHead.TryParse(value, out var head))
                {
                    await stderr.WriteLineAsync($"--anchor '{value}' is not ID:HASH (an event's id and its 64 hexadecimal digits of hash, as verify prints the head)\n{Usage}");
                    return 2;
                }

                anchor = head.ToString();
            }
            else if (option == "--limit")
            {
                if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1)
                {
                    await stderr.WriteLineAsync($"--limit '{value}' is not a positive whole number (the most events to print)\n{Usage}");
                    return 2;
                }
            }
            else if (QueryOptions.TryGetValue(option, out var name))
            {
                query.Add(new(name, value));
            }
            else
            {
                await stderr.WriteLineAsync($"unknown option {option}\n{Usage}");
                return 2;
            }
        }

        if (environment(TokenVariable) is not { Length: > 0 } token)
        {
            await stderr.WriteLineAsync($"set {TokenVariable} to a reader token (RolloutGate__Api__ReaderTokens__N on the server)");
            return 2;
        }

        // As every gate command reads it: --url, else ROLLOUTGATE_URL, else the default; the error names the option.
        if (GateCommand.ReadUrl(name => name == "--url" ? urlOption : null, environment, out var urlError) is not { } baseUri)
        {
            await stderr.WriteLineAsync(urlError);
            return 2;
        }

        if (GateCommand.UserInfoRefusal(baseUri, TokenVariable) is { } userInfoError)
        {
            await stderr.WriteLineAsync(userInfoError);
            return 2;
        }

        var client = new AuditClient(http, baseUri, token, csv);
        try
        {
            return args[0] switch
            {
                "events" => await EventsAsync(client, query, limit, csv, stdout, stderr),
                "verify" => await VerifyAsync(client, anchor, stdout),
                _ => await SummaryAsync(client, query, csv, stdout),
            };
        }
        catch (AuditQueryException ex)
        {
            await stderr.WriteLineAsync(ex.Message);
            return 2;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            // A 200 that is not RolloutGate's: a proxy's HTML login page, another service, JSON without the fields.
            await stderr.WriteLineAsync($"{Urls.Shown(baseUri)} did not answer RolloutGate JSON: {ex.Message}");
            return 2;
        }
    }

    private static async Task<int> EventsAsync(AuditClient client, List<KeyValuePair<string, string>> query, int limit, bool csv, TextWriter stdout, TextWriter stderr)
    {
        string? after = null;
        var written = 0;
        // The plain-text lines are printed once every page is read, so that their columns line up across pages. Their times
        // are UTC to the second, for people; the id orders events of one second, and --csv keeps the stored precision.
        var table = new List<string[]>();
        do
        {
            var page = new List<KeyValuePair<string, string>>(query) { new("limit", Math.Min(PageSize, limit - written).ToString(CultureInfo.InvariantCulture)) };
            if (after is not null)
            {
                page.Add(new("after", after));
            }

            if (csv)
            {
                // Pages come as CSV too; the header is written once, and each row as the server wrote it, a line break
                // inside a quoted cell (an actor "ops\r\nteam") included. The cursor is the last id of the page, when the
                // answer's Link header says a next page follows.
                var records = CsvRecords(await client.GetAsync("api/v1/audit/events", page));
                foreach (var record in records.Skip(written == 0 ? 0 : 1))
                {
                    await stdout.WriteAsync(record + "\r\n");
                }

                var rows = records.Count - 1;
                written += rows;
                after = rows <= 0 || !client.NextPageFollows ? null : records[^1][..records[^1].IndexOf(',', StringComparison.Ordinal)];
                continue;
            }

            using var document = JsonDocument.Parse(await client.GetAsync("api/v1/audit/events", page));
            foreach (var e in document.RootElement.Property("events").EnumerateArray())
            {
                table.Add([
                    e.Property("id").GetInt64().ToString(CultureInfo.InvariantCulture),
                    IsoTimes.Utc(e.Property("at").GetDateTimeOffset()),
                    e.Property("type").GetString() ?? "-",
                    e.Property("deploymentId").GetString() ?? "-",
                    e.Property("actor").GetString() ?? "-",
                    e.Property("data").GetRawText()]);
                written++;
            }

            after = document.RootElement.Property("next").GetString();
        }
        while (after is not null && written < limit);

        if (!csv)
        {
            await TextTable.WriteAsync(stdout, "", [["ID", "AT", "TYPE", "DEPLOYMENT", "ACTOR", "DATA"], .. table]);
        }

        // An export that stopped at the limit says so: exit 0 and the first events alone read as the whole trail.
        if (after is not null)
        {
            await stderr.WriteLineAsync($"audit: stopped at --limit {limit} events, more match; raise --limit, or narrow with --from, --to or a filter");
        }

        return 0;
    }

    private static async Task<int> VerifyAsync(AuditClient client, string? anchor, TextWriter stdout)
    {
        using var document = JsonDocument.Parse(await client.GetAsync("api/v1/audit/verify", anchor is null ? [] : [new("anchor", anchor)]));
        var root = document.RootElement;
        var events = root.Property("events").GetInt64();
        if (root.TryGetProperty("firstBrokenId", out var broken))
        {
            await stdout.WriteLineAsync($"audit chain BROKEN at event {broken.GetInt64()} ({events} events before it verified)");
            return 1;
        }

        if (anchor is not null)
        {
            // A server that does not know anchors answers without "anchor": that is no answer to the question asked.
            var check = root.Property("anchor");
            var id = check.Property("id").GetInt64();
            if (!check.Property("holds").GetBoolean())
            {
                await stdout.WriteLineAsync(check.Property("found").GetString() is { } found
                    ? $"audit chain does NOT match the anchor: event {id} has hash {found}, not {check.Property("hash").GetString()}; the trail up to it was rewritten or replaced ({events} events, each following from the one before)"
                    : $"audit chain does NOT match the anchor: event {id} is gone; the trail ends {(root.TryGetProperty("head", out var end) ? $"at event {end.Property("id").GetInt64()}" : "before any event")} (cut short, or restored from a backup older than the anchor)");
                return 1;
            }

            await stdout.WriteLineAsync($"audit chain holds: {events} events verified, event {id} still as anchored");
        }
        else if (root.Property("ok").GetBoolean())
        {
            await stdout.WriteLineAsync($"audit chain holds: {events} events verified");
        }
        else
        {
            throw new InvalidOperationException("the answer says the chain is broken but names no event");
        }

        if (root.TryGetProperty("head", out var head))
        {
            await stdout.WriteLineAsync($"head: {head.Property("id").GetInt64()}:{head.Property("hash").GetString()}");
        }

        return 0;
    }

    private static async Task<int> SummaryAsync(AuditClient client, List<KeyValuePair<string, string>> query, bool csv, TextWriter stdout)
    {
        var text = await client.GetAsync("api/v1/reports/summary", query);
        if (csv)
        {
            await stdout.WriteAsync(text);
            return 0;
        }

        using var document = JsonDocument.Parse(text);
        // Every row is read before the header is printed, so an answer that is not a summary prints nothing.
        var rows = document.RootElement.Property("services").EnumerateArray().Select(s => new[]
        {
            s.Property("service").GetString() ?? "-",
            Cell(s.Property("deployments")),
            Cell(s.Property("rollbacks")),
            Cell(s.Property("changeFailureRate")),
            Cell(s.Property("medianTimeToDetectSeconds")),
            Cell(s.Property("medianTimeToRollbackSeconds")),
            Cell(s.Property("autoRollbacks")),
            Cell(s.Property("humanDecisions")),
            Cell(s.Property("dismissedRecommendations")),
        }).ToList();
        await TextTable.WriteAsync(stdout, "",
            [["SERVICE", "DEPLOYMENTS", "ROLLBACKS", "CHANGE-FAILURE-RATE", "MEDIAN-DETECT-S", "MEDIAN-ROLLBACK-S", "AUTO", "HUMAN", "DISMISSED"], .. rows]);
        return 0;
    }

    /// <summary>
    /// The records of an RFC 4180 text (<see cref="Api.Csv"/>), each without its CRLF: a line break inside a quoted cell is
    /// part of its record, not the end of one.
    /// </summary>
    internal static List<string> CsvRecords(string text)
    {
        var records = new List<string>();
        var start = 0;
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '"')
            {
                quoted = !quoted;
            }
            else if (!quoted && text[i] == '\n')
            {
                var end = i > start && text[i - 1] == '\r' ? i - 1 : i;
                records.Add(text[start..end]);
                start = i + 1;
            }
        }

        if (start < text.Length)
        {
            records.Add(text[start..]);
        }

        return records;
    }

    /// <summary>The property <paramref name="name"/> of an answer; a <see cref="JsonException"/> naming it when there is none.</summary>
    private static JsonElement Property(this JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value)
            ? value
            : throw new JsonException($"no \"{name}\" in {Truncate(element.GetRawText())}");

    /// <summary>A number of the summary as a table cell: "-" for none (a median without a regression or rollback to measure), as the CLI's other tables show a missing value.</summary>
    private static string Cell(JsonElement value) => value.ValueKind == JsonValueKind.Null ? "-" : value.GetRawText();

    private static string Truncate(string text) => TextCut.Shorten(text, 200, "...");

    /// <summary>Asks the RolloutGate at <paramref name="baseUri"/>, which may sit under a path prefix (https://host/rolloutgate).</summary>
    private sealed class AuditClient(HttpClient http, Uri baseUri, string token, bool csv)
    {
        /// <summary>Whether the last answer named a next page (a CSV page's <c>Link: ...; rel="next"</c>).</summary>
        public bool NextPageFollows { get; private set; }

        /// <summary>The answer to <paramref name="path"/> (relative to the base URL, no leading slash).</summary>
        public async Task<string> GetAsync(string path, IEnumerable<KeyValuePair<string, string>> query)
        {
            var queryString = string.Join("&", query.Select(pair => $"{pair.Key}={Uri.EscapeDataString(pair.Value)}"));
            using var request = new HttpRequestMessage(HttpMethod.Get, Urls.Under(baseUri, path + (queryString.Length > 0 ? "?" + queryString : "")));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(csv ? "text/csv" : "application/json"));
            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                throw new AuditQueryException($"no answer from {GateCommand.Unanswered(baseUri)}: {ex.Message}");
            }

            using (response)
            {
                var body = await response.Content.ReadAsStringAsync();
                if (!response.IsSuccessStatusCode)
                {
                    var detail = body;
                    try
                    {
                        using var problem = JsonDocument.Parse(body);
                        detail = problem.RootElement.TryGetProperty("detail", out var d) ? d.GetString() ?? body : body;
                    }
                    catch (JsonException)
                    {
                    }

                    throw new AuditQueryException($"{(int)response.StatusCode} {response.ReasonPhrase}: {detail}");
                }

                if (csv && !string.Equals(response.Content.Headers.ContentType?.MediaType, "text/csv", StringComparison.OrdinalIgnoreCase))
                {
                    throw new AuditQueryException(
                        $"{Urls.Shown(baseUri)} did not answer RolloutGate CSV: {response.Content.Headers.ContentType?.MediaType ?? "no Content-Type"}: {Truncate(body)}");
                }

                NextPageFollows = response.Headers.TryGetValues("Link", out var links)
                    && links.Any(link => link.Contains("rel=\"next\"", StringComparison.Ordinal));
                return body;
            }
        }
    }

    private sealed class AuditQueryException(string message) : Exception(message);
}
