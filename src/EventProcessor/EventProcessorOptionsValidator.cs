using Microsoft.Extensions.Options;

namespace EventProcessor;

/// <summary>Rejects options the engine cannot run with, naming the option and the accepted range.</summary>
internal sealed class EventProcessorOptionsValidator : IValidateOptions<EventProcessorOptions>
{
    public ValidateOptionsResult Validate(string? name, EventProcessorOptions options)
    {
        List<string> errors = [];
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            errors.Add("ConnectionString is required.");
        }

        Check(options.PollInterval, nameof(options.PollInterval), TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(1));
        Check(options.BatchSize, nameof(options.BatchSize), 1, 10_000);
        Check(options.Workers, nameof(options.Workers), 1, 64);
        Check(options.MaxRetries, nameof(options.MaxRetries), 1, 1_000);
        Check(options.RetryBaseDelay, nameof(options.RetryBaseDelay), TimeSpan.Zero, TimeSpan.FromDays(1));
        Check(options.RetryMaxDelay, nameof(options.RetryMaxDelay), options.RetryBaseDelay, TimeSpan.FromDays(30));
        Check(options.HandlerTimeout, nameof(options.HandlerTimeout), TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(1));
        Check(options.LeaseDuration, nameof(options.LeaseDuration), TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
        Check(options.OnDemandConnectionTimeout, nameof(options.OnDemandConnectionTimeout), TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(5));
        Check(options.ShutdownGrace, nameof(options.ShutdownGrace), TimeSpan.Zero, TimeSpan.FromMinutes(1));
        if (!(options.RetryBackoffFactor is >= 1.0 and <= 100.0))
        {
            errors.Add($"RetryBackoffFactor must be from 1 to 100 (was {options.RetryBackoffFactor}).");
        }

        if (string.IsNullOrWhiteSpace(options.InstanceName))
        {
            errors.Add("InstanceName must not be empty.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);

        void Check<T>(T value, string option, T min, T max)
            where T : IComparable<T>
        {
            if (value.CompareTo(min) < 0 || value.CompareTo(max) > 0)
            {
                errors.Add($"{option} must be from {min} to {max} (was {value}).");
            }
        }
    }
}
