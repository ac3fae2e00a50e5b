using System.Security.Cryptography;
using System.Text;
using EventProcessor.Handlers.Webhooks;

namespace EventProcessor.Tests.Handlers;

public sealed class WebhookSignatureTests
{
    [Test]
    public void Matches_the_Standard_Webhooks_published_test_vector()
    {
        var key = WebhookSignature.KeyFromSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");

        var signature = WebhookSignature.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, """{"test": 2432232314}"""u8);

        Assert.That(signature, Is.EqualTo("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    }

    [Test]
    public void A_whsec_secret_is_base64_after_the_prefix()
    {
        var bytes = RandomNumberGenerator.GetBytes(32);

        Assert.That(WebhookSignature.KeyFromSecret("whsec_" + Convert.ToBase64String(bytes)), Is.EqualTo(bytes));
    }

    [Test]
    public void Any_other_secret_is_used_as_its_UTF8_bytes()
    {
        const string Secret = "my shared sécret";
        var body = "{\"ünïcode\": true}"u8.ToArray();

        var key = WebhookSignature.KeyFromSecret(Secret);
        var signature = WebhookSignature.Sign(key, "evt_1", 1700000000, body);

        var expected = "v1," + Convert.ToBase64String(
            HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), (byte[])[.. "evt_1.1700000000."u8, .. body]));
        Assert.Multiple(() =>
        {
            Assert.That(key, Is.EqualTo(Encoding.UTF8.GetBytes(Secret)));
            Assert.That(signature, Is.EqualTo(expected));
        });
    }

    [Test]
    public void Signs_the_exact_body_bytes_id_and_timestamp()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var body = "{\"a\":1}"u8.ToArray();
        var signature = WebhookSignature.Sign(key, "id-1", 1700000000, body);

        Assert.Multiple(() =>
        {
            Assert.That(signature, Does.StartWith("v1,"));
            Assert.That(Convert.FromBase64String(signature[3..]), Has.Length.EqualTo(32), "an HMAC-SHA256 digest");
            Assert.That(WebhookSignature.Sign(key, "id-2", 1700000000, body), Is.Not.EqualTo(signature), "the id is signed");
            Assert.That(WebhookSignature.Sign(key, "id-1", 1700000001, body), Is.Not.EqualTo(signature), "the timestamp is signed");
            Assert.That(WebhookSignature.Sign(key, "id-1", 1700000000, "{\"a\":2}"u8), Is.Not.EqualTo(signature), "the body is signed");
            Assert.That(WebhookSignature.Sign(key, "id-1", 1700000000, body), Is.EqualTo(signature), "signing is deterministic");
        });
    }

    [TestCase("whsec_not base64!")]
    [TestCase("whsec_abc")]
    [TestCase("whsec_%%%%")]
    public void A_malformed_whsec_secret_throws_FormatException(string secret)
    {
        var exception = Assert.Throws<FormatException>(() => WebhookSignature.KeyFromSecret(secret));

        Assert.That(exception!.Message, Does.Contain("whsec_").And.Not.Contain(secret[6..]), "the message never echoes the secret");
    }

    [Test]
    public void An_empty_secret_is_refused() =>
        Assert.Throws<ArgumentException>(() => WebhookSignature.KeyFromSecret(""));
}
