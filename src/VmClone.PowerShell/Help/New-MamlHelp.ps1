<#
.SYNOPSIS
    Writes the MAML help of the VmClone cmdlets from their one source: the cmdlet classes.
.DESCRIPTION
    The texts come from the /// documentation of each cmdlet class (summary = synopsis,
    remarks = description, example = examples, property summaries = parameter descriptions),
    compiled into the assembly's XML documentation file. Parameter metadata (sets, positions,
    pipeline input, aliases, types) comes from the loaded module itself, so help can never
    disagree with the code. Run in a child process: it imports the built module.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModuleManifest,
    [Parameter(Mandatory)] [string[]] $DocumentationXml,
    [Parameter(Mandatory)] [string] $OutFile
)
$ErrorActionPreference = 'Stop'

$module = Import-Module $ModuleManifest -PassThru -Force
$members = @{}
foreach ($file in ($DocumentationXml -split ",")) {
    [xml] $docs = Get-Content -LiteralPath $file -Raw
    foreach ($m in $docs.doc.members.member) { $members[$m.name] = $m }
}

$common = [System.Management.Automation.Internal.CommonParameters].GetProperties().Name
$standard = @{
    WhatIf  = 'Shows what the command would do without doing it.'
    Confirm = 'Asks for confirmation before doing it.'
}

function Get-Paragraphs([System.Xml.XmlNode] $node) {
    if ($null -eq $node) { return @() }
    $paras = @($node.SelectNodes('para'))
    if ($paras.Count -eq 0) { return @(Get-Text $node) }
    return @($paras | ForEach-Object { Get-Text $_ })
}

function Get-Text([System.Xml.XmlNode] $node) {
    if ($null -eq $node) { return '' }
    # <see cref="T:X"/> and <c>x</c> become plain words.
    $text = ''
    foreach ($child in $node.ChildNodes) {
        if ($child.NodeType -eq 'Text') { $text += $child.Value }
        elseif ($child.Name -eq 'see') { $text += ($child.GetAttribute('cref') -replace '^[A-Z]:', '' -split '\.')[-1] }
        else { $text += $child.InnerText }
    }
    return ($text -replace '\s+', ' ').Trim()
}

function Get-Code([System.Xml.XmlNode] $node) {
    $lines = $node.InnerText.Trim("`r", "`n") -split '\r?\n'
    $indent = ($lines | Where-Object { $_.Trim() } | ForEach-Object { $_.Length - $_.TrimStart().Length } | Measure-Object -Minimum).Minimum
    return (($lines | ForEach-Object { if ($_.Length -ge $indent) { $_.Substring($indent) } else { $_.TrimStart() } }) -join "`n").Trim()
}

$settings = [System.Xml.XmlWriterSettings]::new()
$settings.Indent = $true
$settings.Encoding = [System.Text.UTF8Encoding]::new($false)
$maml = 'http://schemas.microsoft.com/maml/2004/10'
$cmd = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$dev = 'http://schemas.microsoft.com/maml/dev/2004/10'
$w = [System.Xml.XmlWriter]::Create($OutFile, $settings)

function Para([string] $text) { $w.WriteElementString('maml', 'para', $maml, $text) }

function Write-Parameter($p, $set, [string] $description) {
    $attr = if ($set) { $set } else { $p.ParameterSets.Values | Select-Object -First 1 }
    $pipeline = @()
    if ($attr.ValueFromPipeline) { $pipeline += 'ByValue' }
    if ($attr.ValueFromPipelineByPropertyName) { $pipeline += 'ByPropertyName' }
    $w.WriteStartElement('command', 'parameter', $cmd)
    $w.WriteAttributeString('required', "$($attr.IsMandatory)".ToLowerInvariant())
    $w.WriteAttributeString('variableLength', "$($p.ParameterType.IsArray)".ToLowerInvariant())
    $w.WriteAttributeString('globbing', "$($p.Name -eq 'Path')".ToLowerInvariant())
    $w.WriteAttributeString('pipelineInput', $(if ($pipeline) { "True ($($pipeline -join ', '))" } else { 'False' }))
    $w.WriteAttributeString('position', $(if ($attr.Position -ge 0) { "$($attr.Position)" } else { 'named' }))
    $w.WriteAttributeString('aliases', $(if ($p.Aliases.Count) { $p.Aliases -join ', ' } else { 'none' }))
    $w.WriteElementString('maml', 'name', $maml, $p.Name)
    $w.WriteStartElement('maml', 'description', $maml); Para $description; $w.WriteEndElement()
    $typeName = $p.ParameterType.Name
    # ValidateSet, or a validation that lists its values the same way (ValidateDiskFormat asks the format registry).
    $validateSet = $p.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateArgumentsAttribute] -and $_.PSObject.Properties['ValidValues'] } | Select-Object -First 1
    $values = if ($validateSet) { $validateSet.ValidValues } elseif ($p.ParameterType.IsEnum) { [Enum]::GetNames($p.ParameterType) } else { @() }
    if ($values) {
        $w.WriteStartElement('command', 'parameterValueGroup', $cmd)
        foreach ($v in $values) {
            $w.WriteStartElement('command', 'parameterValue', $cmd)
            $w.WriteAttributeString('required', 'false'); $w.WriteAttributeString('variableLength', 'false')
            $w.WriteString("$v"); $w.WriteEndElement()
        }
        $w.WriteEndElement()
    }
    if ($p.ParameterType -ne [System.Management.Automation.SwitchParameter]) {
        $w.WriteStartElement('command', 'parameterValue', $cmd)
        $w.WriteAttributeString('required', 'true'); $w.WriteAttributeString('variableLength', "$($p.ParameterType.IsArray)".ToLowerInvariant())
        $w.WriteString($typeName); $w.WriteEndElement()
    }
    $w.WriteStartElement('dev', 'type', $dev); $w.WriteElementString('maml', 'name', $maml, $p.ParameterType.FullName); $w.WriteEndElement()
    $w.WriteElementString('dev', 'defaultValue', $dev, 'None')
    $w.WriteEndElement()
}

$w.WriteStartDocument()
$w.WriteStartElement('helpItems', 'http://msh')
$w.WriteAttributeString('schema', 'maml')
$missing = @()
foreach ($command in (Get-Command -Module $module.Name -CommandType Cmdlet | Sort-Object Name)) {
    $type = $command.ImplementingType
    $doc = $members["T:$($type.FullName)"]
    if ($null -eq $doc) { $missing += "$($command.Name): no /// documentation"; continue }
    $examples = @($doc.SelectNodes('example'))
    if ($examples.Count -lt 2) { $missing += "$($command.Name): fewer than two examples" }

    $w.WriteStartElement('command', 'command', $cmd)
    $w.WriteAttributeString('xmlns', 'maml', $null, $maml)
    $w.WriteAttributeString('xmlns', 'dev', $null, $dev)
    $w.WriteStartElement('command', 'details', $cmd)
    $w.WriteElementString('command', 'name', $cmd, $command.Name)
    $w.WriteElementString('command', 'verb', $cmd, $command.Verb)
    $w.WriteElementString('command', 'noun', $cmd, $command.Noun)
    $w.WriteStartElement('maml', 'description', $maml); Para (Get-Text $doc.SelectSingleNode('summary')); $w.WriteEndElement()
    $w.WriteEndElement()
    $w.WriteStartElement('maml', 'description', $maml)
    foreach ($p in Get-Paragraphs $doc.SelectSingleNode('remarks')) { Para $p }
    $w.WriteEndElement()

    $parameters = $command.Parameters.Values | Where-Object { $common -notcontains $_.Name }
    $describe = @{}
    foreach ($p in $parameters) {
        $pd = $members["P:$($type.FullName).$($p.Name)"]
        $declared = $type.GetProperty($p.Name)
        if ($null -eq $pd -and $declared) { $pd = $members["P:$($declared.DeclaringType.FullName).$($p.Name)"] }
        if ($standard.ContainsKey($p.Name)) { $describe[$p.Name] = $standard[$p.Name]; continue }
        if ($null -eq $pd) { $missing += "$($command.Name) -$($p.Name): no /// documentation" }
        $describe[$p.Name] = if ($pd) { Get-Text $pd.SelectSingleNode("summary") } else { "" }
    }
    $w.WriteStartElement('command', 'syntax', $cmd)
    foreach ($set in $command.ParameterSets) {
        $w.WriteStartElement('command', 'syntaxItem', $cmd)
        $w.WriteElementString('maml', 'name', $maml, $command.Name)
        foreach ($sp in ($set.Parameters | Where-Object { $common -notcontains $_.Name } | Sort-Object { if ($_.Position -ge 0) { $_.Position } else { 1000 } })) {
            $p = $command.Parameters[$sp.Name]
            Write-Parameter $p $p.ParameterSets[$set.Name] $describe[$p.Name]
        }
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'parameters', $cmd)
    foreach ($p in ($parameters | Sort-Object Name)) {
        $set = $p.ParameterSets.Values | Sort-Object { -[int]$_.IsMandatory } | Select-Object -First 1
        Write-Parameter $p $set $describe[$p.Name]
    }
    $w.WriteEndElement()

    $inputs = $parameters | Where-Object { $_.ParameterSets.Values | Where-Object { $_.ValueFromPipeline -or $_.ValueFromPipelineByPropertyName } }
    $w.WriteStartElement('command', 'inputTypes', $cmd)
    foreach ($p in $inputs) {
        $w.WriteStartElement('command', 'inputType', $cmd)
        $w.WriteStartElement('dev', 'type', $dev); $w.WriteElementString('maml', 'name', $maml, $p.ParameterType.FullName); $w.WriteEndElement()
        $w.WriteStartElement('maml', 'description', $maml); Para "-$($p.Name) from the pipeline"; $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()
    $w.WriteStartElement('command', 'returnValues', $cmd)
    foreach ($t in $command.OutputType) {
        $w.WriteStartElement('command', 'returnValue', $cmd)
        $w.WriteStartElement('dev', 'type', $dev); $w.WriteElementString('maml', 'name', $maml, $t.Name); $w.WriteEndElement()
        $w.WriteStartElement('maml', 'description', $maml); $td = $members["T:$($t.Name)"]; Para $(if ($td) { Get-Text $td.SelectSingleNode("summary") } else { "" }); $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'examples', $cmd)
    $n = 0
    foreach ($e in $examples) {
        $n++
        $w.WriteStartElement('command', 'example', $cmd)
        $w.WriteElementString('maml', 'title', $maml, "-------------------------- Example ${n}: $(Get-Text $e.SelectSingleNode('summary')) --------------------------")
        $w.WriteElementString('dev', 'code', $dev, (Get-Code $e.SelectSingleNode('code')))
        $w.WriteStartElement('dev', 'remarks', $dev)
        foreach ($p in @($e.SelectNodes('para'))) { Para (Get-Text $p) }
        $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()
    $w.WriteStartElement('command', 'relatedLinks', $cmd)
    $w.WriteStartElement('maml', 'navigationLink', $maml)
    $w.WriteElementString('maml', 'linkText', $maml, 'about_VmClone')
    $w.WriteElementString('maml', 'uri', $maml, '')
    $w.WriteEndElement()
    $w.WriteEndElement()
    $w.WriteEndElement()
}
$w.WriteEndElement()
$w.WriteEndDocument()
$w.Dispose()
if ($missing) { throw "Help is incomplete:`n  $($missing -join "`n  ")" }
