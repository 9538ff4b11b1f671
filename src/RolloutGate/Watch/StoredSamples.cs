using System.Buffers.Binary;
using RolloutGate.Core.Analysis;

namespace RolloutGate.Watch;

/// <summary>
/// The stored form of a baseline's samples (<c>watch_baselines.samples</c>, migrations/0008_compact_baselines.sql): one
/// bytea, column by column, big-endian (the byte order of PostgreSQL's own <c>int8send</c> and <c>float8send</c>, with
/// which the migration converted the JSON stored before):
/// <list type="bullet">
/// <item><description>1 byte: the layout's version, 1;</description></item>
/// <item><description>4 bytes: n, the number of samples;</description></item>
/// <item><description>n bytes: per sample, which fields it has: 1 value, 2 requests, 4 errors;</description></item>
/// <item><description>n × 8 bytes: each sample's time, milliseconds since the Unix epoch;</description></item>
/// <item><description>n × 8 bytes each: the values (IEEE 754 double), the request counts and the error counts (64-bit
/// integers), 0 where the sample lacks the field.</description></item>
/// </list>
/// A 24-hour baseline at 1-minute steps is 47 KB a metric. PostgreSQL sends a bytea as it is, where it would send an
/// array element by element and JSON as text: reading every running watch's baselines after a restart is what this saves.
/// </summary>
public static class StoredSamples
{
    public const byte Version = 1;

    private const int HeaderBytes = 5;
    private const int BytesPerSample = 1 + 4 * 8;
    private const byte HasValue = 1;
    private const byte HasRequests = 2;
    private const byte HasErrors = 4;

    public static byte[] Encode(IReadOnlyList<Observation> samples)
    {
        var n = samples.Count;
        var bytes = new byte[HeaderBytes + n * BytesPerSample];
        bytes[0] = Version;
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(1), n);
        var columns = Columns(bytes, n);
        for (var i = 0; i < n; i++)
        {
            var sample = samples[i];
            columns.Flags[i] = (byte)((sample.Value is null ? 0 : HasValue) | (sample.Requests is null ? 0 : HasRequests) | (sample.Errors is null ? 0 : HasErrors));
            BinaryPrimitives.WriteInt64BigEndian(columns.At[(8 * i)..], sample.At.ToUnixTimeMilliseconds());
            BinaryPrimitives.WriteDoubleBigEndian(columns.Value[(8 * i)..], sample.Value ?? 0);
            BinaryPrimitives.WriteInt64BigEndian(columns.Requests[(8 * i)..], sample.Requests ?? 0);
            BinaryPrimitives.WriteInt64BigEndian(columns.Errors[(8 * i)..], sample.Errors ?? 0);
        }

        return bytes;
    }

    /// <summary>
    /// Throws <see cref="InvalidDataException"/>, saying why, unless <paramref name="bytes"/> are samples in the layout this
    /// version reads (a layout it does not know, or a truncated one, is an error, never a guess); returns their number.
    /// </summary>
    public static int Check(byte[] bytes)
    {
        if (bytes.Length < HeaderBytes || bytes[0] != Version)
        {
            throw new InvalidDataException($"stored baseline samples: unknown layout (version byte {(bytes.Length == 0 ? "missing" : bytes[0])}, this service reads {Version})");
        }

        var n = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(1));
        if (n < 0 || bytes.Length != HeaderBytes + (long)n * BytesPerSample)
        {
            throw new InvalidDataException($"stored baseline samples: {bytes.Length} bytes cannot hold the {n} samples they announce");
        }

        return n;
    }

    /// <summary>The samples of <paramref name="bytes"/>, checked first (<see cref="Check"/>).</summary>
    public static Observation[] Decode(byte[] bytes)
    {
        var n = Check(bytes);
        var columns = Columns(bytes, n);
        var samples = new Observation[n];
        for (var i = 0; i < n; i++)
        {
            var flags = columns.Flags[i];
            samples[i] = new Observation(
                DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64BigEndian(columns.At[(8 * i)..])),
                (flags & HasValue) != 0 ? BinaryPrimitives.ReadDoubleBigEndian(columns.Value[(8 * i)..]) : null,
                (flags & HasRequests) != 0 ? BinaryPrimitives.ReadInt64BigEndian(columns.Requests[(8 * i)..]) : null,
                (flags & HasErrors) != 0 ? BinaryPrimitives.ReadInt64BigEndian(columns.Errors[(8 * i)..]) : null);
        }

        return samples;
    }

    /// <summary>Each metric's samples of one deployment, decoded (<see cref="Decode(byte[])"/>).</summary>
    public static Dictionary<string, IReadOnlyList<Observation>> Decode(IReadOnlyDictionary<string, byte[]> metrics) =>
        metrics.ToDictionary(m => m.Key, m => (IReadOnlyList<Observation>)Decode(m.Value), StringComparer.Ordinal);

    private static Layout Columns(byte[] bytes, int n)
    {
        var rest = bytes.AsSpan(HeaderBytes);
        return new Layout(rest[..n], rest.Slice(n, 8 * n), rest.Slice(9 * n, 8 * n), rest.Slice(17 * n, 8 * n), rest.Slice(25 * n, 8 * n));
    }

    private readonly ref struct Layout(Span<byte> flags, Span<byte> at, Span<byte> value, Span<byte> requests, Span<byte> errors)
    {
        public Span<byte> Flags { get; } = flags;

        public Span<byte> At { get; } = at;

        public Span<byte> Value { get; } = value;

        public Span<byte> Requests { get; } = requests;

        public Span<byte> Errors { get; } = errors;
    }
}
