using System.Security.Cryptography;
using System.Text;

namespace EventProcessor.Ingress;

/// <summary>Name-based UUIDs (RFC 9562 version 5, SHA-1): the same name always gives the same id.</summary>
public static class DeterministicGuid
{
    /// <summary>The namespace of every id this product derives from a source's natural key.</summary>
    public static readonly Guid Namespace = new("5b1c3a52-7d0e-4f45-9a8e-6c2f1e0b9d47");

    /// <summary>The version-5 UUID of <paramref name="name"/> (UTF-8) in <paramref name="namespaceId"/>.</summary>
    public static Guid Create(Guid namespaceId, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        Span<byte> namespaceBytes = stackalloc byte[16];
        namespaceId.TryWriteBytes(namespaceBytes, bigEndian: true, out _);
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var input = new byte[16 + nameBytes.Length];
        namespaceBytes.CopyTo(input);
        nameBytes.CopyTo(input.AsSpan(16));

        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
#pragma warning disable CA5350 // SHA-1 is what RFC 9562 prescribes for version 5; it names, it does not protect.
        SHA1.HashData(input, hash);
#pragma warning restore CA5350
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50);
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return new Guid(hash[..16], bigEndian: true);
    }

    /// <summary>The version-5 UUID of <paramref name="name"/> in this product's <see cref="Namespace"/>.</summary>
    public static Guid Create(string name) => Create(Namespace, name);
}
