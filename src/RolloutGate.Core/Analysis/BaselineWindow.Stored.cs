namespace RolloutGate.Core.Analysis;

/// <summary>What a baseline is reduced with besides its samples: a stored reduction is reused only for the same.</summary>
internal readonly record struct ReductionInputs(
    MetricKind Kind, long MinRequests, long SmoothingHalfWidthTicks, double NoiseFloor, long? ReferenceUntilMs, string TimeZoneId, double FalseAlarmRate)
{
    public ReductionInputs(MetricKind kind, DetectorOptions options, DateTimeOffset? referenceUntil, TimeZoneInfo? timeZone)
        : this(kind, options.MinRequests, options.SmoothingHalfWidth.Ticks, options.NoiseFloor, referenceUntil?.ToUnixTimeMilliseconds(), timeZone?.Id ?? "",
            options.FalseAlarmRatePerWatch)
    {
    }
}

/// <summary>
/// The reduced baseline's stored form (<c>watch_baselines.reduced</c>, migrations/0011_reduced_baselines.sql). A watch
/// rebuilt after a restart reads it instead of its samples and reducing them again: a 7-day baseline at 1-minute steps is
/// 332 KB of samples and about 5 ms of reduction a metric, against about 23 KB read as it is.
/// <para>
/// It is a cache of <see cref="From"/>, never the record (the samples stay, and are the evidence; the reductions are
/// dropped when the deployment stops watching): it holds the inputs of the reduction besides the samples (the metric's
/// kind, the options it reads, the watch's end, the time zone) and the version of the reduction, <see cref="StoredVersion"/>, and
/// <see cref="Decode"/> answers null, "reduce the samples again", unless all of them are the ones asked for. Whoever changes what <see cref="From"/> computes or keeps raises
/// <see cref="StoredVersion"/>, so that reductions stored by an earlier version are not used
/// (BaselineWindowStoredTests records each version's output and fails until that is done).
/// </para>
/// <para>
/// Layout, little-endian: the version byte; the inputs (kind byte, int64 minimum requests, int64 half-width ticks, float64
/// noise floor, int64 watch end in Unix milliseconds or <see cref="long.MinValue"/> for none, the time zone's id as a
/// length-prefixed UTF-8 string, empty for UTC, float64 false-rollback rate, which a load adjustment's margin reads); the
/// scalars; a presence byte and the fitted variance law's five float64 values (<see cref="CountNoiseLaw"/>); a presence
/// byte and the load adjustment's five float64 values (<see cref="LoadAdjustment"/>); then the arrays, each value array
/// as an int32 length and its float64 values, each time array as runs of equal steps (<see cref="WriteTimes"/>), the
/// count's reference and weekly logs (empty without a load adjustment) after the metric's, then a request rate's expected
/// counts (<see cref="ExpectedRequestsAt"/>: times of day and their logs, weekly times and their logs; empty for the other
/// kinds); then a presence byte and the
/// noise distribution's arrays and scale.
/// </para>
/// </summary>
public sealed partial class BaselineWindow
{
    /// <summary>The version of the reduction and of its stored form: raise it whenever either changes.</summary>
    public const byte StoredVersion = 12;

    /// <summary>The reduced baseline in its stored form, with the inputs it was reduced with.</summary>
    public byte[] Encode()
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream))
        {
            writer.Write(StoredVersion);
            writer.Write((byte)_inputs.Kind);
            writer.Write(_inputs.MinRequests);
            writer.Write(_inputs.SmoothingHalfWidthTicks);
            writer.Write(_inputs.NoiseFloor);
            writer.Write(_inputs.ReferenceUntilMs ?? long.MinValue);
            writer.Write(_inputs.TimeZoneId);
            writer.Write(_inputs.FalseAlarmRate);

            writer.Write(UsableSamples);
            writer.Write(IsSeasonal);
            writer.Write(IsWeekly);
            writer.Write(Days);
            writer.Write(LogNoiseScale);
            writer.Write(ReferenceError.Variance);
            writer.Write(ReferenceError.Span ?? -1);
            writer.Write(Requests);
            writer.Write(Errors);
            writer.Write(Dispersion);
            writer.Write(_halfWidthSeconds);
            writer.Write(_countScale);
            writer.Write(_medianRequests);
            writer.Write(_noiseLaw is not null);
            _noiseLaw?.Write(writer);
            writer.Write(_load is not null);
            _load?.Write(writer);
            WriteTimes(writer, _timeOfDaySeconds);
            Write(writer, _logReference);
            WriteTimes(writer, _seconds);
            Write(writer, _logs);
            Write(writer, _countReference);
            Write(writer, _countLogs);
            WriteTimes(writer, _expectedTimeOfDay);
            Write(writer, _expectedDaily);
            WriteTimes(writer, _expectedSeconds);
            Write(writer, _expectedLogs);

            writer.Write(_noise is not null);
            _noise?.Write(writer);
        }

        return stream.ToArray();
    }

    /// <summary>
    /// The baseline stored by <see cref="Encode"/>, or null when it was reduced by another version or from other inputs
    /// than <paramref name="kind"/>, <paramref name="options"/>, <paramref name="referenceUntil"/> and
    /// <paramref name="timeZone"/> (the caller then reduces the samples). Throws <see cref="InvalidDataException"/> when
    /// the bytes are not a stored baseline at all.
    /// </summary>
    public static BaselineWindow? Decode(
        byte[] bytes, MetricKind kind, DetectorOptions options, DateTimeOffset? referenceUntil, TimeZoneInfo? timeZone = null)
    {
        if (bytes.Length == 0 || bytes[0] != StoredVersion)
        {
            return null;
        }

        try
        {
            using var reader = new BinaryReader(new MemoryStream(bytes, writable: false));
            reader.ReadByte();
            var stored = new ReductionInputs(
                (MetricKind)reader.ReadByte(), reader.ReadInt64(), reader.ReadInt64(), reader.ReadDouble(), reader.ReadInt64() is var ms && ms != long.MinValue ? ms : null,
                reader.ReadString(), reader.ReadDouble());
            var inputs = new ReductionInputs(kind, options, referenceUntil, timeZone);
            if (stored != inputs)
            {
                return null;
            }

            var usable = reader.ReadInt32();
            var isSeasonal = reader.ReadBoolean();
            var isWeekly = reader.ReadBoolean();
            var days = reader.ReadInt32();
            var scale = reader.ReadDouble();
            var error = new ReferenceError(reader.ReadDouble(), reader.ReadInt32() is var span && span >= 0 ? span : null);
            var requests = reader.ReadInt64();
            var errors = reader.ReadInt64();
            var dispersion = reader.ReadDouble();
            var halfWidth = reader.ReadDouble();
            var (countScale, medianRequests) = (reader.ReadDouble(), reader.ReadDouble());
            CountNoiseLaw? noiseLaw = reader.ReadBoolean() ? CountNoiseLaw.Read(reader) : null;
            LoadAdjustment? load = reader.ReadBoolean() ? LoadAdjustment.Read(reader) : null;
            var (timeOfDay, reference, seconds, logs) = (ReadTimes(reader), Read(reader), ReadTimes(reader), Read(reader));
            var (countReference, countLogs) = (Read(reader), Read(reader));
            if (load is not null && (countReference.Length != timeOfDay.Length || countLogs.Length != seconds.Length))
            {
                throw new InvalidDataException($"stored reduced baseline: a count reference of {countReference.Length} and {countLogs.Length} values beside {timeOfDay.Length} and {seconds.Length} times");
            }

            var (expectedTimeOfDay, expectedDaily, expectedSeconds, expectedLogs) = (ReadTimes(reader), Read(reader), ReadTimes(reader), Read(reader));
            if (expectedDaily.Length != expectedTimeOfDay.Length || expectedLogs.Length != expectedSeconds.Length)
            {
                throw new InvalidDataException($"stored reduced baseline: expected counts of {expectedDaily.Length} and {expectedLogs.Length} values beside {expectedTimeOfDay.Length} and {expectedSeconds.Length} times");
            }

            var noise = reader.ReadBoolean() ? NoiseDistribution.Read(reader) : null;
            if (reader.BaseStream.Position != bytes.Length)
            {
                throw new InvalidDataException($"{bytes.Length - reader.BaseStream.Position} bytes left over");
            }

            return new BaselineWindow(kind, usable, isSeasonal, timeOfDay, reference, scale, requests, errors, noise)
            {
                IsWeekly = isWeekly,
                Days = days,
                ReferenceError = error,
                Dispersion = dispersion,
                _seconds = seconds,
                _logs = logs,
                _halfWidthSeconds = halfWidth,
                _countScale = countScale,
                _medianRequests = medianRequests,
                _noiseLaw = noiseLaw,
                _load = load,
                _countReference = countReference,
                _countLogs = countLogs,
                _expectedTimeOfDay = expectedTimeOfDay,
                _expectedDaily = expectedDaily,
                _expectedSeconds = expectedSeconds,
                _expectedLogs = expectedLogs,
                _inputs = inputs,
                TimeZone = timeZone,
            };
        }
        catch (Exception ex) when (ex is EndOfStreamException or ArgumentException or FormatException)
        {
            throw new InvalidDataException($"stored reduced baseline: truncated or malformed ({ex.Message})", ex);
        }
    }

    internal static void Write(BinaryWriter writer, double[] values)
    {
        writer.Write(values.Length);
        foreach (var value in values)
        {
            writer.Write(value);
        }
    }

    /// <summary>
    /// Times (sorted, mostly at the watch's interval) as runs of equal steps: a run is its first value, its step and its
    /// length, and value k of it is exactly first + step × k (a run ends where that is not exact), so a regular day of
    /// 1,440 times is 20 bytes instead of 11.5 KB; as plain values when runs would be larger (irregular times).
    /// </summary>
    private static void WriteTimes(BinaryWriter writer, double[] times)
    {
        var runs = new List<(double First, double Step, int Length)>();
        for (var i = 0; i < times.Length;)
        {
            var step = i + 1 < times.Length ? times[i + 1] - times[i] : 0;
            var j = i + 1;
            while (j < times.Length && times[i] + step * (j - i) == times[j])
            {
                j++;
            }

            runs.Add((times[i], step, j - i));
            i = j;
        }

        if (runs.Count * 20 >= times.Length * 8)
        {
            writer.Write((byte)0);
            Write(writer, times);
            return;
        }

        writer.Write((byte)1);
        writer.Write(times.Length);
        writer.Write(runs.Count);
        foreach (var (first, step, length) in runs)
        {
            writer.Write(first);
            writer.Write(step);
            writer.Write(length);
        }
    }

    private static double[] ReadTimes(BinaryReader reader)
    {
        var form = reader.ReadByte();
        if (form == 0)
        {
            return Read(reader);
        }

        var n = reader.ReadInt32();
        var runs = reader.ReadInt32();
        if (form != 1 || n < 0 || runs < 0 || runs > n || n > 100_000_000)
        {
            throw new InvalidDataException($"stored reduced baseline: times in form {form}, {n} in {runs} runs");
        }

        var times = new double[n];
        var at = 0;
        for (var r = 0; r < runs; r++)
        {
            var (first, step, length) = (reader.ReadDouble(), reader.ReadDouble(), reader.ReadInt32());
            if (length <= 0 || length > n - at)
            {
                throw new InvalidDataException($"stored reduced baseline: a run of {length} times where {n - at} are left");
            }

            for (var k = 0; k < length; k++)
            {
                times[at++] = first + step * k;
            }
        }

        if (at != n)
        {
            throw new InvalidDataException($"stored reduced baseline: runs of {at} times where {n} are announced");
        }

        return times;
    }

    internal static double[] Read(BinaryReader reader)
    {
        var n = reader.ReadInt32();
        if (n < 0 || n > (reader.BaseStream.Length - reader.BaseStream.Position) / sizeof(double))
        {
            throw new InvalidDataException($"stored reduced baseline: an array of {n} values does not fit in what is left");
        }

        var values = new double[n];
        for (var i = 0; i < n; i++)
        {
            values[i] = reader.ReadDouble();
        }

        return values;
    }
}
