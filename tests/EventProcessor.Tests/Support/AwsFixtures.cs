namespace EventProcessor.Tests.Support;

/// <summary>The real AWS payloads in <c>../shared/fixtures/aws</c>, beside the repository's root.</summary>
public static class AwsFixtures
{
    public static string Directory { get; } = Locate();

    public static IEnumerable<string> All => System.IO.Directory.EnumerateFiles(Directory, "*.json").Order(StringComparer.Ordinal);

    public static string Read(string fileName) => File.ReadAllText(Path.Combine(Directory, fileName));

    private static string Locate()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EventProcessor.sln")))
            {
                var fixtures = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "fixtures", "aws"));
                return System.IO.Directory.Exists(fixtures)
                    ? fixtures
                    : throw new DirectoryNotFoundException($"The AWS fixtures are expected at {fixtures} (../shared beside the repository).");
            }
        }

        throw new DirectoryNotFoundException("EventProcessor.sln not found above the test assembly.");
    }
}
