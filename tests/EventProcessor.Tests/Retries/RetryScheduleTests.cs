using EventProcessor.Retries;

namespace EventProcessor.Tests.Retries;

public sealed class RetryScheduleTests
{
    [Test]
    public void DelaysGrowByTheFactorWithinTwentyPercentJitterAndStopAtTheCap()
    {
        var options = new EventProcessorOptions
        {
            RetryBaseDelay = TimeSpan.FromSeconds(1),
            RetryBackoffFactor = 3,
            RetryMaxDelay = TimeSpan.FromSeconds(60),
        };
        var schedule = new RetrySchedule(options, new Random(42));

        for (var round = 0; round < 200; round++)
        {
            for (var failed = 1; failed <= 6; failed++)
            {
                var envelope = Math.Min(60_000, 1_000 * Math.Pow(3, failed - 1));
                var delay = schedule.DelayAfter(failed).TotalMilliseconds;
                Assert.That(delay, Is.InRange(envelope * 0.8, Math.Min(60_000, envelope * 1.2)), $"after failure {failed}");
            }
        }
    }

    [Test]
    public void ZeroBaseDelayRetriesAtOnce()
    {
        var schedule = new RetrySchedule(new EventProcessorOptions { RetryBaseDelay = TimeSpan.Zero }, new Random(1));
        Assert.That(schedule.DelayAfter(5), Is.EqualTo(TimeSpan.Zero));
    }
}
