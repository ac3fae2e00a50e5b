using System.Security.Cryptography;
using System.Text;

namespace EventProcessor.Handlers.Webhooks;

/// <summary>Standard Webhooks signing: <c>v1,</c> + base64 of HMAC-SHA256 over <c>{id}.{timestamp}.{body}</c>.</summary>
public static class WebhookSignature
{
    private const string SecretPrefix = "whsec_";

    /// <summary>The key bytes of a secret: base64 after a <c>whsec_</c> prefix, otherwise the UTF-8 bytes.</summary>
    public static byte[] KeyFromSecret(string secret)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        if (!secret.StartsWith(SecretPrefix, StringComparison.Ordinal))
        {
            return Encoding.UTF8.GetBytes(secret);
        }

        byte[] key;
        try
        {
            key = Convert.FromBase64String(secret[SecretPrefix.Length..]);
        }
        catch (FormatException)
        {
            throw new FormatException("A webhook secret that starts with 'whsec_' must be base64 after the prefix.");
        }

        return key.Length > 0 ? key : throw new FormatException("A webhook secret that starts with 'whsec_' needs key bytes after the prefix.");
    }

    /// <summary>The value of the <c>webhook-signature</c> header.</summary>
    public static string Sign(byte[] key, string messageId, long timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.UTF8.GetBytes($"{messageId}.{timestamp}.");
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, signed));
    }
}
