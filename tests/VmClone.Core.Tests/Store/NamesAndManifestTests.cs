using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using CsCheck;
using VmClone.Core.Store;

using VmClone.Disks;
using Xunit;

namespace VmClone.Core.Tests.Store;

public class NamesAndManifestTests
{
    [Theory]
    [InlineData("win11-2026.10")]
    [InlineData("lab_01")]
    [InlineData("A")]
    public void AcceptsPortableNames(string name) => Assert.Null(StoreNames.Problem(name));

    [Theory]
    [InlineData("", "empty")]
    [InlineData("..", "starts with '.'")]
    [InlineData(".hidden", "starts with '.'")]
    [InlineData("a/b", "separator")]
    [InlineData("a\\b", "separator")]
    [InlineData("lab 01", "' '")]
    [InlineData("CON", "reserved")]
    [InlineData("nul.txt", "reserved")]
    [InlineData("com1", "reserved")]
    [InlineData("trailing.", "ends with '.'")]
    public void RefusesNamesThatAreNotSafeFileNames(string name, string why)
    {
        string? problem = StoreNames.Problem(name);
        Assert.NotNull(problem);
        Assert.Contains(why, problem);
        var ex = Assert.Throws<StoreException>(() => StoreNames.Validate(name, "clone"));
        Assert.Equal("InvalidName", ex.ErrorId);
    }

    [Fact]
    public void RefusesNamesLongerThan64()
    {
        Assert.Null(StoreNames.Problem(new string('a', 64)));
        Assert.NotNull(StoreNames.Problem(new string('a', 65)));
    }

    [Fact]
    public void EveryAcceptedNameIsAPlainFileNameOfItsOwn()
    {
        var allowed = new Regex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$");
        Gen.String[Gen.Char["abcXYZ019._-/\\ :*?\"<>|\0"], 0, 70].Sample(name =>
        {
            if (StoreNames.Problem(name) is null)
            {
                Assert.Matches(allowed, name);
                Assert.Equal(name, Path.GetFileName(name));
                Assert.NotEqual("..", name);
            }
        }, iter: 5000);
    }

    [Fact]
    public void ManifestRoundTripsAsReadableJsonWithAFormatVersion()
    {
        using var t = new TestStore();
        string path = t.File("clone.json");
        var manifest = new CloneManifest
        {
            Name = "lab-01",
            Base = "win11",
            Created = DateTimeOffset.Parse("2026-10-01T08:00:00Z"),
            Volumes = { new CloneVolumeManifest { Name = "system", Type = VolumeType.System, Format = DiskFormat.Vhdx, File = "system.vhdx", Parent = "bases/win11/system.vhdx" } },
        };
        Manifest.Write(path, manifest);
        string text = File.ReadAllText(path);
        Assert.Contains("\"formatVersion\": 1", text);
        Assert.Contains("\"type\": \"System\"", text);
        Assert.Contains("\"parent\": \"bases/win11/system.vhdx\"", text);
        CloneManifest back = Manifest.Read<CloneManifest>(path);
        Assert.Equal("win11", back.Base);
        Assert.Equal("bases/win11/system.vhdx", back.Volumes.Single().Parent);
        Assert.Single(Directory.GetFiles(t.Folder)); // no temp file left behind
    }

    [Fact]
    public void ManifestFromANewerVmCloneIsRefused()
    {
        using var t = new TestStore();
        string path = t.File("base.json");
        File.WriteAllText(path, "{ \"formatVersion\": 99, \"name\": \"x\" }");
        var ex = Assert.Throws<StoreException>(() => Manifest.Read<BaseManifest>(path));
        Assert.Equal("StoreFormatUnsupported", ex.ErrorId);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{ \"name\": \"no version\" }")]
    [InlineData("")]
    public void DamagedManifestIsRefusedNamingTheFile(string text)
    {
        using var t = new TestStore();
        string path = t.File("base.json");
        File.WriteAllText(path, text);
        var ex = Assert.Throws<StoreException>(() => Manifest.Read<BaseManifest>(path));
        Assert.Equal("ManifestInvalid", ex.ErrorId);
        Assert.Contains(path, ex.Message);
    }
}
